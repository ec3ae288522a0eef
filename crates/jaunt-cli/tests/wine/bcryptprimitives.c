/* Wine 8 has no bcryptprimitives.dll, but Rust's std (1.78+) imports
   ProcessPrng from it: without this stand-in every Rust program exits with
   "Library bcryptprimitives.dll not found". It forwards to RtlGenRandom.
   Only the Wine tests use it; real Windows (10+) has the DLL. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len); /* RtlGenRandom */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n; len -= n;
    }
    return TRUE;
}
