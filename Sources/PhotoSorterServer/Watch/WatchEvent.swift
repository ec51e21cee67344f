/// What the watched folders report to the library watcher, by path: inotify's events, with watch descriptors
/// resolved and folder moves paired.
enum WatchEvent: Equatable, Sendable {
    /// A file was created, written, closed, changed its attributes or was moved in.
    case fileChanged(String)
    /// A file was deleted or moved away.
    case fileRemoved(String)
    /// A folder was created or moved in (it is watched now, with everything below it).
    case folderAppeared(String)
    /// A folder was deleted or moved out of the watched tree.
    case folderVanished(String)
    /// A watch root is watched (at start, or back after it was gone): it is reconciled.
    case rootWatched(String)
    /// A watch root was deleted, moved away or unmounted; it is watched again when it comes back.
    case rootLost(String)
    /// The kernel's event queue overflowed (`IN_Q_OVERFLOW`): events were lost.
    case overflow
    /// `fs.inotify.max_user_watches` was reached while watching the folders below this root: some go unwatched.
    case watchLimit(root: String, folder: String)
}
