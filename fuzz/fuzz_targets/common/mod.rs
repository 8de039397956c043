//! What the file-reading targets share.

/// A scratch folder for one input's files, in RAM (`/dev/shm`) where there is one: a disk
/// busy with other work can stall a write past libFuzzer's one-second limit, which would be
/// reported as a hang of the parser.
pub fn scratch() -> std::io::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
}
