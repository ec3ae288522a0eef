//! Recordings kept in a directory: the pieces land in one file per
//! session under the day it started, retries and gaps behave as in the
//! store, nothing of the text goes to the store, a recording made while
//! they were in the store still plays, and the purge removes only whole
//! days past the retention.

use super::nodes::joined_node;
use super::*;
use crate::RecordingStorage;

#[tokio::test]
async fn recordings_in_a_directory_are_appended_played_and_purged_by_day() {
    let f = Fixture::new();
    let rec = tempfile::tempdir().expect("tempdir");
    let dir = rec.path().join("recordings");
    // First a recording while the cluster keeps them in the store.
    let earlier_id = uuid::Uuid::new_v4().to_string();
    let auth = f.auth(SecondFactor::Off).await;
    let node = joined_node(&auth, "n1").await;
    auth.put_recording(
        &node,
        recording_piece(&earlier_id, crate::now(), 0, "{\"v\": 2}\n", true),
    )
    .await
    .expect("stored");
    drop(auth);

    let keep = Ttl::from_secs(10 * 86_400);
    let auth = f
        .auth_with("example", SecondFactor::Off, |c| {
            c.recordings = RecordingStorage::Dir(dir.clone());
            c.recording_retention = Some(keep);
        })
        .await
        .expect("auth");
    let id = uuid::Uuid::new_v4().to_string();
    let start = crate::now();
    let header = "{\"version\": 2, \"width\": 80, \"height\": 24}\n";
    let line = "[0.5, \"o\", \"hello é\"]\n";
    let up = |offset: u64, data: &str, complete: bool| {
        recording_piece(&id, start, offset, data, complete)
    };
    assert_eq!(
        auth.put_recording(&node, up(0, header, false))
            .await
            .expect("1"),
        header.len() as u64
    );
    // A retry of the first piece with more after it: only the new bytes.
    let both = format!("{header}{line}");
    assert_eq!(
        auth.put_recording(&node, up(0, &both, false))
            .await
            .expect("2"),
        both.len() as u64
    );
    // The same piece again changes nothing; a gap is refused.
    auth.put_recording(&node, up(header.len() as u64, line, true))
        .await
        .expect("again");
    assert!(auth.put_recording(&node, up(999, "x", true)).await.is_err());

    // One file, under the session's day, private, holding exactly the text.
    let file = dir
        .join(jaunt_types::timefmt::format_day(start))
        .join(format!("{id}.cast"));
    assert_eq!(std::fs::read_to_string(&file).expect("file"), both);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let (meta, data) = auth.recording("bob", &id).await.expect("play");
    assert_eq!(data, both);
    assert_eq!(meta.size, both.len() as u64);
    // Nothing of its text in the store, only the metadata.
    let rows = auth
        .store()
        .backend()
        .list("/recordings/data/")
        .await
        .expect("list");
    assert!(rows.iter().all(|r| !r.key.contains(&id)), "{rows:?}");
    // The one from before still plays, from the store.
    let (_, earlier) = auth.recording("bob", &earlier_id).await.expect("earlier");
    assert_eq!(earlier, "{\"v\": 2}\n");
    // Another user cannot, wherever it is kept.
    assert!(auth.recording("mallory", &id).await.is_err());

    // The purge: a day past the retention (and the grace) goes whole;
    // today's, a day still inside it and what is not a day stay.
    let day = |days_ago: i64| dir.join(jaunt_types::timefmt::format_day(start - days_ago * 86_400));
    for (d, name) in [(13, "old.cast"), (9, "kept.cast")] {
        std::fs::create_dir_all(day(d)).expect("day");
        std::fs::write(day(d).join(name), "x").expect("file");
    }
    std::fs::create_dir_all(dir.join("lost+found")).expect("other");
    assert_eq!(auth.purge_recording_files().await.expect("purge"), 1);
    assert!(!day(13).exists());
    assert!(day(9).join("kept.cast").exists());
    assert!(dir.join("lost+found").exists());
    assert!(file.exists());
    assert_eq!(auth.recording("bob", &id).await.expect("play").1, both);
}
