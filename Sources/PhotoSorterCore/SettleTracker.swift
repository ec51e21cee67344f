/// The watch mode's debounce: turns file-system events into folder scans, and never lets a file be taken while it is
/// still being written.
///
/// - A file that had an event (created, written, closed, attributes, moved in) is *settling*: it is taken only once its
///   size and modification time have been the same for `settleSeconds` and no new event came for it in that time.
///   Then its folder is due for a non-recursive scan.
/// - A file deleted or moved away makes its folder due for a non-recursive scan (which sweeps it); a folder that
///   appeared (created, moved in) is due for a recursive scan; a folder that vanished (deleted, moved away) is due
///   for a recursive scan of its gone path (its photos vanished). These wait until the folder had no such event for
///   `settleSeconds`, so a burst (a thousand deletions) is one scan.
/// - Scans that only remove (deletions, vanished folders) also wait while files are settling, up to
///   `settleSeconds × removalPatience`: a file moved within the watched tree is then found at its new path before its
///   old folder is swept, and the library sees a move rather than a disappearance and a return.
///
/// Pure: time and file state come from the injected `clock` and `stat`. Memory is bounded by what is in flight —
/// a settled file or a scanned folder is dropped.
public struct SettleTracker: Sendable {
    /// What decides that a file is stable: its size and modification time.
    public struct FileState: Equatable, Sendable {
        public var size: Int64
        /// Nanoseconds since 1970.
        public var modifiedAtNs: Int64

        public init(size: Int64, modifiedAtNs: Int64) {
            self.size = size
            self.modifiedAtNs = modifiedAtNs
        }
    }

    /// A folder to scan: its files only, or everything below it.
    public struct FolderScan: Equatable, Sendable {
        public let folder: String
        public let recursive: Bool

        public init(folder: String, recursive: Bool) {
            self.folder = folder
            self.recursive = recursive
        }
    }

    private struct SettlingFile {
        var lastEventAt: Double
        var state: FileState?
        /// When `state` was last seen to change.
        var stableSince: Double
    }

    private struct FolderWork {
        var recursive = false
        /// A file of the folder settled: it is due now.
        var hasSettledFiles = false
        /// Deletions, moves out, vanished or appeared folders: due once quiet for `settleSeconds`.
        var lastChangeAt: Double?
        /// When the first such change came (how long a removal has waited for settling files).
        var firstChangeAt: Double?
        /// Only removals (nothing was added): such a scan waits for settling files.
        var onlyRemovals = true
    }

    public let settleSeconds: Double
    /// How many settle periods a removal-only scan waits at most for settling files.
    public let removalPatience: Double
    private let clock: @Sendable () -> Double
    private let stat: @Sendable (String) -> FileState?
    private var settling: [String: SettlingFile] = [:]
    private var folders: [String: FolderWork] = [:]

    /// `clock` is monotonic seconds; `stat` says a file's state, nil when it is gone or is not a regular file.
    public init(settleSeconds: Double, removalPatience: Double = 10, clock: @escaping @Sendable () -> Double,
                stat: @escaping @Sendable (String) -> FileState?) {
        self.settleSeconds = settleSeconds
        self.removalPatience = removalPatience
        self.clock = clock
        self.stat = stat
    }

    /// Files still settling.
    public var settlingCount: Int { settling.count }

    /// Folders waiting for a scan.
    public var waitingFolderCount: Int { folders.count }

    /// A file was created, written, closed, changed its attributes or was moved in.
    public mutating func fileChanged(_ path: String) {
        let now = clock()
        if settling[path] != nil {
            settling[path]!.lastEventAt = now
        } else {
            settling[path] = SettlingFile(lastEventAt: now, state: stat(path), stableSince: now)
        }
    }

    /// A file was deleted or moved away: its folder will be scanned (and swept).
    public mutating func fileRemoved(_ path: String) {
        settling[path] = nil
        noteChange(in: Self.parent(of: path), recursive: false, removal: true)
    }

    /// A folder was created or moved in: everything below it will be scanned.
    public mutating func folderAppeared(_ path: String) {
        noteChange(in: path, recursive: true, removal: false)
    }

    /// A folder was deleted or moved away: its gone path will be scanned, which finds its photos vanished.
    public mutating func folderVanished(_ path: String) {
        let below = path + "/"
        settling = settling.filter { !$0.key.hasPrefix(below) }
        noteChange(in: path, recursive: true, removal: true)
    }

    /// The folder scans due now, each once; scans that add come before scans that only remove. A folder inside a
    /// recursive scan's folder is left to that scan. Settled files and returned scans are forgotten.
    public mutating func dueScans() -> [FolderScan] {
        let now = clock()
        for (path, file) in settling {
            guard let current = stat(path) else {
                settling[path] = nil  // gone: its deletion event says what to do
                continue
            }
            if current != file.state {
                settling[path]!.state = current
                settling[path]!.stableSince = now
            } else if now - max(file.lastEventAt, file.stableSince) >= settleSeconds {
                settling[path] = nil
                folders[Self.parent(of: path), default: FolderWork()].hasSettledFiles = true
                folders[Self.parent(of: path)]!.onlyRemovals = false
            }
        }
        var adding: [FolderScan] = [], removing: [FolderScan] = []
        for (folder, work) in folders {
            let quiet = work.lastChangeAt.map { now - $0 >= settleSeconds } ?? true
            guard work.hasSettledFiles || (work.lastChangeAt != nil && quiet) else { continue }
            if work.onlyRemovals {
                let waited = now - (work.firstChangeAt ?? now)
                if !settling.isEmpty && waited < settleSeconds * removalPatience { continue }
                removing.append(FolderScan(folder: folder, recursive: work.recursive))
            } else {
                adding.append(FolderScan(folder: folder, recursive: work.recursive))
            }
        }
        let due = (adding.sorted { $0.folder < $1.folder }) + (removing.sorted { $0.folder < $1.folder })
        due.forEach { folders[$0.folder] = nil }
        let recursiveFolders = due.filter(\.recursive).map(\.folder)
        return due.filter { scan in !recursiveFolders.contains { Self.isInside(scan.folder, $0) } }
    }

    /// The files still settling that a scan of `folder` would otherwise take: directly in it, or anywhere below
    /// it for a recursive scan.
    public func unsettled(in folder: String, recursive: Bool) -> Set<String> {
        Set(settling.keys.filter { recursive ? Self.isInside($0, folder) : Self.parent(of: $0) == folder })
    }

    /// Every file still settling.
    public var allUnsettled: Set<String> { Set(settling.keys) }

    private mutating func noteChange(in folder: String, recursive: Bool, removal: Bool) {
        let now = clock()
        var work = folders[folder] ?? FolderWork()
        work.recursive = work.recursive || recursive
        work.lastChangeAt = now
        work.firstChangeAt = work.firstChangeAt ?? now
        work.onlyRemovals = work.onlyRemovals && removal
        folders[folder] = work
    }

    /// The folder holding `path` ("/" for a path directly under the root of the file system).
    public static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Whether `path` is strictly below `folder`.
    static func isInside(_ path: String, _ folder: String) -> Bool {
        path.count > folder.count && path.hasPrefix(folder == "/" ? "/" : folder + "/")
    }
}
