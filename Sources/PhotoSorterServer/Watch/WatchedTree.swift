import Glibc

/// The folders below the watch roots and their inotify watches, kept in step as folders appear, move and vanish,
/// and inotify's events turned into `WatchEvent`s by path. Hidden entries (a leading dot, which scans skip too) are
/// neither watched nor reported. Owned by the reader thread alone.
final class WatchedTree {
    private let inotify: Inotify
    private var pathByWatch: [Int32: String] = [:]
    private var watchByPath: [String: Int32] = [:]
    /// Each root and whether it is watched now.
    private(set) var roots: [String: Bool] = [:]
    /// Folders moved away by a `IN_MOVED_FROM` whose `IN_MOVED_TO` has not come (yet): by cookie, with when.
    private var movedAway: [UInt32: (path: String, at: Double)] = [:]
    /// A folder move's two halves come in one read unless the queue is busy; one unpaired for this long left the tree.
    static let movePairingSeconds = 0.5

    init(inotify: Inotify) {
        self.inotify = inotify
    }

    var watchCount: Int { pathByWatch.count }

    /// The inotify events queued now, waiting up to `timeoutMs` for the first.
    func read(timeoutMs: Int32) throws(InotifyError) -> [InotifyEvent] { try inotify.read(timeoutMs: timeoutMs) }

    /// Starts watching `root` and every folder below it, if it is there.
    func follow(root: String) -> [WatchEvent] {
        roots[root] = roots[root] ?? false
        return rewatch(root)
    }

    /// Roots that are not watched now (gone, unplugged, unreadable).
    var lostRoots: [String] { roots.filter { !$0.value }.map(\.key).sorted() }

    /// Watches `root` again with every folder below it (one already watched keeps its watch): after a queue overflow,
    /// which may have lost the creation of folders, or to find a root that came back.
    func rewatch(_ root: String) -> [WatchEvent] {
        var events: [WatchEvent] = []
        let wasWatched = roots[root] == true
        let limitHit = watchTree(root)
        roots[root] = watchByPath[root] != nil
        if !wasWatched, roots[root] == true { events.append(.rootWatched(root)) }
        if let limitHit { events.append(.watchLimit(root: root, folder: limitHit)) }
        return events
    }

    /// The watch events these inotify events mean.
    func translate(_ events: [InotifyEvent], now: Double) -> [WatchEvent] {
        var out: [WatchEvent] = []
        for event in events {
            if event.has(IN_Q_OVERFLOW) {
                out.append(.overflow)
                continue
            }
            guard let folder = pathByWatch[event.watch] else { continue }
            if event.has(IN_IGNORED) {
                forget(watch: event.watch, path: folder)
                if roots[folder] == true { lose(root: folder, into: &out) }
                continue
            }
            if event.name.isEmpty {
                // The folder itself: only a root's own deletion or move matters (any other folder's is reported by
                // its parent, with its name).
                if roots[folder] == true, event.has(IN_DELETE_SELF) || event.has(IN_MOVE_SELF) { lose(root: folder, into: &out) }
                continue
            }
            if event.name.hasPrefix(".") { continue }
            let path = folder == "/" ? "/" + event.name : folder + "/" + event.name
            if event.has(IN_ISDIR) {
                folderEvent(event, path: path, now: now, into: &out)
            } else if event.has(IN_DELETE) || event.has(IN_MOVED_FROM) {
                out.append(.fileRemoved(path))
            } else {
                out.append(.fileChanged(path))
            }
        }
        return out
    }

    /// Folders moved away whose other half did not come within `movePairingSeconds`: they left the watched tree.
    func unpairedMoves(now: Double) -> [WatchEvent] {
        var out: [WatchEvent] = []
        for (cookie, move) in movedAway where now - move.at >= Self.movePairingSeconds {
            movedAway[cookie] = nil
            unwatchTree(move.path)
            out.append(.folderVanished(move.path))
        }
        return out
    }

    private func folderEvent(_ event: InotifyEvent, path: String, now: Double, into out: inout [WatchEvent]) {
        if event.has(IN_MOVED_FROM) {
            movedAway[event.cookie] = (path, now)
        } else if event.has(IN_MOVED_TO), let from = movedAway.removeValue(forKey: event.cookie) {
            // Moved within the tree: the watches stay, under their new paths.
            renameTree(from.path, to: path)
            out.append(.folderAppeared(path))
            out.append(.folderVanished(from.path))
        } else if event.has(IN_CREATE) || event.has(IN_MOVED_TO) {
            if let limitHit = watchTree(path) { out.append(.watchLimit(root: rootOf(path), folder: limitHit)) }
            out.append(.folderAppeared(path))
        } else if event.has(IN_DELETE) {
            unwatchTree(path)
            out.append(.folderVanished(path))
        }
    }

    private func lose(root: String, into out: inout [WatchEvent]) {
        roots[root] = false
        unwatchTree(root)
        out.append(.rootLost(root))
    }

    private func rootOf(_ path: String) -> String {
        roots.keys.filter { path == $0 || path.hasPrefix($0 == "/" ? "/" : $0 + "/") }.max { $0.count < $1.count } ?? path
    }

    /// Watches `folder` and the real folders below it (not through symlinks, not hidden). Returns the folder where
    /// the watch limit was hit, if it was; the rest of the tree is then left to the reconciliation scans.
    private func watchTree(_ folder: String) -> String? {
        var stack = [folder]
        while let next = stack.popLast() {
            do {
                let watch = try inotify.watch(next)
                if let previous = pathByWatch[watch], previous != next { watchByPath[previous] = nil }
                pathByWatch[watch] = next
                watchByPath[next] = watch
            } catch {
                if error.isWatchLimit { return next }
                continue  // gone already, or unreadable: its parent's events or the next reconciliation say what became of it
            }
            stack.append(contentsOf: Self.subfolders(of: next))
        }
        return nil
    }

    private func unwatchTree(_ folder: String) {
        for (path, watch) in watchByPath where path == folder || path.hasPrefix(folder + "/") {
            inotify.unwatch(watch)
            forget(watch: watch, path: path)
        }
    }

    private func forget(watch: Int32, path: String) {
        if pathByWatch[watch] == path { pathByWatch[watch] = nil }
        if watchByPath[path] == watch { watchByPath[path] = nil }
    }

    private func renameTree(_ old: String, to new: String) {
        for (path, watch) in watchByPath where path == old || path.hasPrefix(old + "/") {
            let renamed = new + path.dropFirst(old.count)
            watchByPath[path] = nil
            watchByPath[renamed] = watch
            pathByWatch[watch] = renamed
        }
    }

    /// The real, visible folders directly in `folder` (the type from `d_type`, or `lstat` where the file system
    /// does not give it).
    private static func subfolders(of folder: String) -> [String] {
        guard let handle = opendir(folder) else { return [] }
        defer { closedir(handle) }
        var folders: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(".") { continue }
            let path = folder == "/" ? "/" + name : folder + "/" + name
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_DIR): folders.append(path)
            case Int32(DT_UNKNOWN):
                var info = stat()
                if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { folders.append(path) }
            default: break
            }
        }
        return folders
    }
}
