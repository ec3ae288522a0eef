//! `jsh scp` through the proxy to a direct and a tunnel node: files both
//! ways with checksums, directories with -r, the refusals scp users
//! expect, no progress output when not on a terminal, and the SFTP audit
//! events. Runs as root (it creates OS users for logins).

mod support;

use std::path::Path;
use support::*;

fn scp(s: &Setup, args: &[&str]) -> Out {
    let mut all = vec!["scp"];
    all.extend_from_slice(args);
    s.c.jsh(&s.home, &all, "")
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| ((i * 31 + seed) % 251) as u8)
        .collect()
}

#[test]
fn files_and_directories_both_ways() {
    let s = setup("sc");
    let login = s.os.name.clone();
    let src = s.home.join("big.bin");
    std::fs::write(&src, pattern(3 << 20, 7)).expect("src");
    let src_arg = src.display().to_string();
    for node in ["node1", "node2"] {
        let up = scp(&s, &[&src_arg, &format!("{login}@{node}:up-{node}.bin")]).ok();
        // Not a terminal: no progress bar, nothing printed.
        assert_eq!((up.stdout.as_str(), up.stderr.as_str()), ("", ""));
        let back = s.home.join(format!("back-{node}.bin"));
        scp(
            &s,
            &[
                &format!("{login}@{node}:up-{node}.bin"),
                &back.display().to_string(),
            ],
        )
        .ok();
        assert_eq!(sha256_of(&src), sha256_of(&back), "{node}");
    }

    // Several files into a directory (here: the login's home, "host:").
    let (a, b) = (s.home.join("a.txt"), s.home.join("b.txt"));
    std::fs::write(&a, "alpha\n").expect("a");
    std::fs::write(&b, "beta\n").expect("b");
    scp(
        &s,
        &[
            &a.display().to_string(),
            &b.display().to_string(),
            &format!("{login}@node1:"),
        ],
    )
    .ok();
    let fetched = s.home.join("fetched");
    std::fs::create_dir_all(&fetched).expect("dir");
    scp(
        &s,
        &[
            &format!("{login}@node1:a.txt"),
            &format!("{login}@node1:b.txt"),
            &fetched.display().to_string(),
        ],
    )
    .ok();
    assert_eq!(read(&fetched.join("a.txt")), "alpha\n");
    assert_eq!(read(&fetched.join("b.txt")), "beta\n");

    // A tree with -r, and back.
    let tree = s.home.join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("tree");
    std::fs::write(tree.join("top.txt"), "top\n").expect("top");
    std::fs::write(tree.join("sub/inner.bin"), pattern(100_000, 3)).expect("inner");
    let tree_arg = tree.display().to_string();
    scp(&s, &[&tree_arg, &format!("{login}@node2:")]).fails_with("is a directory; use -r");
    scp(&s, &["-r", &tree_arg, &format!("{login}@node2:")]).ok();
    let copy = s.home.join("tree-copy");
    scp(
        &s,
        &[
            "-r",
            &format!("{login}@node2:tree"),
            &copy.display().to_string(),
        ],
    )
    .ok();
    assert_eq!(read(&copy.join("top.txt")), "top\n");
    assert_eq!(
        sha256_of(&copy.join("sub/inner.bin")),
        sha256_of(&tree.join("sub/inner.bin"))
    );

    // What scp users expect to be told.
    scp(&s, &[&format!("{login}@node1:nosuch.txt"), "x"]).fails_with("nosuch.txt");
    scp(&s, &["a.txt", "b.txt"]).fails_with("one side must be remote");
    scp(
        &s,
        &[&format!("{login}@node1:a"), &format!("{login}@node2:b")],
    )
    .fails_with("one remote host to another");
    scp(&s, &[&src_arg, "root@node1:x"]).fails_with("access denied");
    scp(&s, &[&src_arg, &format!("{login}@nosuch:x")]).fails_with("not found in inventory");

    // The node audited the transfers as SFTP operations.
    let events = eventually("sftp events", std::time::Duration::from_secs(20), || {
        let e = audit(&s.c, &["--type=sftp"]);
        e.iter()
            .any(|e| {
                e["fields"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("up-node1.bin"))
            })
            .then_some(e)
    });
    assert!(events.iter().any(|e| e["fields"]["action"] == "write"));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
