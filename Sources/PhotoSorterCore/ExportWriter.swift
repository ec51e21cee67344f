import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An export that could not start or could not record what it did.
public enum ExportError: Error, Equatable, CustomStringConvertible {
    case notADirectory(path: String)
    case cannotCreateDirectory(path: String, reason: String)
    case unreadableManifest(path: String, reason: String)
    case unsupportedManifestVersion(path: String, version: Int)
    case cannotWriteManifest(path: String, reason: String)

    public var description: String {
        switch self {
        case .notADirectory(let path): "export target \(path) exists and is not a directory"
        case .cannotCreateDirectory(let path, let reason): "cannot create export directory \(path): \(reason)"
        case .unreadableManifest(let path, let reason):
            "cannot read the export manifest \(path) (\(reason)); fix or remove it to start the export afresh"
        case .unsupportedManifestVersion(let path, let version):
            "export manifest \(path) has version \(version); this photo-sorter understands version \(ExportManifest.currentVersion)"
        case .cannotWriteManifest(let path, let reason): "cannot write the export manifest \(path): \(reason)"
        }
    }
}

/// A file the export could not make or remove; the run goes on without it.
public struct ExportProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The photo is not at its path. Not exported; a file an earlier run made for it stays.
        case missingSource = "missing_source"
        /// Something the export did not make is at the path. Left alone; the photo is not exported there.
        case occupied
        /// A file an earlier run made and that is no longer wanted was changed or replaced since. Left in place.
        case changedByUser = "changed_by_user"
        /// The file system refused.
        case failed
    }

    public let kind: Kind
    /// Path relative to the export directory.
    public let path: String
    /// The source photo, or why the file system refused.
    public let detail: String

    public init(kind: Kind, path: String, detail: String) {
        self.kind = kind
        self.path = path
        self.detail = detail
    }

    public var description: String { "\(kind.rawValue): \(path): \(detail)" }
}

/// What an export run did. Encodes as the CLI's JSON summary (the problems are listed separately).
public struct ExportReport: Sendable, Encodable {
    /// The export directory (absolute).
    public let dir: String
    public let link: ExportLinkMode
    /// Person folders in the tree.
    public let persons: Int
    /// Wanted files present after the run: `created + unchanged`.
    public let files: Int
    public let created: Int
    public let removed: Int
    public let unchanged: Int
    /// Wanted photos whose source was not found (a file an earlier run made for one stays, counted as unchanged).
    public let missing: Int
    /// Wanted files not made: the path was occupied or the file system refused.
    public let skipped: Int
    public let problems: [ExportProblem]

    enum CodingKeys: String, CodingKey {
        case dir, link, persons, files, created, removed, unchanged, missing, skipped
    }
}

/// Applies an `ExportPlan` to a directory and records the result in its manifest.
///
/// Never touches anything it did not make: a file is removed only when the previous manifest lists it and it is
/// still what the export made (a symlink to the recorded source; a hard link with the recorded inode; a copy with
/// the recorded inode, size and modification time). A person folder is removed only when it is no longer wanted
/// and removing our files emptied it. The manifest is replaced atomically at the end.
public struct ExportWriter: Sendable {
    /// Absolute path of the export directory.
    public let directory: String
    public let link: ExportLinkMode

    public init(directory: String, link: ExportLinkMode) {
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
        self.link = link
    }

    public var manifestPath: String { directory + "/" + ExportManifest.fileName }

    /// Brings the directory in line with `persons`. Throws `ExportError`; per-file trouble is reported in
    /// `ExportReport.problems` instead.
    public func export(_ persons: [ExportPerson]) throws -> ExportReport {
        try prepareDirectory()
        let previous = try readManifest()
        let plan = ExportPlan(persons: persons.map(Self.withAbsolutePaths), link: link, previous: previous)
        var entries: [String: ExportManifest.Entry] = [:]
        var problems: [ExportProblem] = []

        // Removals first, so that a path whose source or link mode changed can be made again below.
        var removed = 0
        var touchedFolders = Set<String>()
        for path in plan.remove {
            guard let previous, let entry = previous.entries[path] else { continue }
            let node = Node(at: fullPath(path))
            if node == .absent { continue }
            guard node.isMade(from: entry, as: previous.link) else {
                problems.append(ExportProblem(kind: .changedByUser, path: path, detail: entry.source))
                continue
            }
            if unlink(fullPath(path)) == 0 {
                removed += 1
                touchedFolders.insert(Self.folder(of: path))
            } else {
                // Left out of the new manifest like a changed file: a later run never deletes what it cannot vouch for.
                problems.append(ExportProblem(kind: .failed, path: path, detail: "cannot remove: \(Self.errnoText())"))
            }
        }
        // rmdir removes only an empty folder: one still holding anything (the user's files included) stays.
        for folder in touchedFolders.subtracting(plan.folders).sorted() { rmdir(fullPath(folder)) }

        var created = 0, unchanged = 0, missing = 0, skipped = 0
        let keep = Set(plan.keep)
        for (path, source) in plan.wanted.sorted(by: { $0.key < $1.key }) {
            let sourceExists = Node(following: source).isRegularFile
            if !sourceExists {
                missing += 1
                problems.append(ExportProblem(kind: .missingSource, path: path, detail: source))
            }
            // A kept file the user deleted is made again; one they replaced is reported as occupied by `make`.
            if keep.contains(path), let entry = previous?.entries[path], Node(at: fullPath(path)).isMade(from: entry, as: link) {
                // A hard link to a photo since replaced by a new file (an editor's save) still holds the old one.
                let stale = sourceExists && isStaleHardLink(entry, source: source)
                if stale && unlink(fullPath(path)) != 0 {
                    problems.append(ExportProblem(kind: .failed, path: path, detail: "cannot refresh: \(Self.errnoText())"))
                }
                if Node(at: fullPath(path)) != .absent {
                    entries[path] = entry
                    unchanged += 1
                    continue
                }
            }
            guard sourceExists else { continue }
            do {
                entries[path] = try make(path, from: source)
                created += 1
            } catch {
                skipped += 1
                problems.append(error)
            }
        }

        try writeManifest(ExportManifest(link: link, entries: entries))
        return ExportReport(dir: directory, link: link, persons: plan.folders.count, files: created + unchanged,
                            created: created, removed: removed, unchanged: unchanged, missing: missing,
                            skipped: skipped, problems: problems)
    }

    // MARK: - Steps

    private func prepareDirectory() throws {
        switch Node(following: directory) {
        case .absent:
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw ExportError.cannotCreateDirectory(path: directory, reason: error.localizedDescription)
            }
        case .directory: break
        default: throw ExportError.notADirectory(path: directory)
        }
    }

    private func readManifest() throws -> ExportManifest? {
        guard Node(at: manifestPath) != .absent else { return nil }
        struct Versioned: Decodable { let version: Int }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
            let version = try JSONDecoder().decode(Versioned.self, from: data).version
            guard version == ExportManifest.currentVersion else {
                throw ExportError.unsupportedManifestVersion(path: manifestPath, version: version)
            }
            let manifest = try JSONDecoder().decode(ExportManifest.self, from: data)
            // Removal trusts these paths: each must stay one folder and one file inside the export directory.
            if let bad = manifest.entries.keys.sorted().first(where: { !Self.isFolderAndFile($0) }) {
                throw ExportError.unreadableManifest(path: manifestPath, reason: "entry \"\(bad)\" is not a <folder>/<file> path")
            }
            return manifest
        } catch let error as ExportError {
            throw error
        } catch {
            throw ExportError.unreadableManifest(path: manifestPath, reason: "\(error)")
        }
    }

    /// Writes a temporary file beside the manifest and renames it over the manifest.
    private func writeManifest(_ manifest: ExportManifest) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let temporary = manifestPath + ".partial"
        do {
            try encoder.encode(manifest).write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw ExportError.cannotWriteManifest(path: manifestPath, reason: error.localizedDescription)
        }
        guard rename(temporary, manifestPath) == 0 else {
            throw ExportError.cannotWriteManifest(path: manifestPath, reason: Self.errnoText())
        }
    }

    /// Makes the file at `path` in the writer's link mode, creating its folder when needed.
    private func make(_ path: String, from source: String) throws(ExportProblem) -> ExportManifest.Entry {
        let folder = fullPath(Self.folder(of: path)), target = fullPath(path)
        switch Node(at: folder) {
        case .absent:
            guard mkdir(folder, 0o755) == 0 else { throw failure(path, "cannot create folder: \(Self.errnoText())") }
        case .directory: break
        default: throw ExportProblem(kind: .occupied, path: Self.folder(of: path), detail: source)
        }
        guard Node(at: target) == .absent else { throw ExportProblem(kind: .occupied, path: path, detail: source) }
        switch link {
        case .symlink:
            guard symlink(source, target) == 0 else { throw failure(path, "cannot link: \(Self.errnoText())") }
            return ExportManifest.Entry(source: source, stamp: nil)
        case .hardlink:
            // AT_SYMLINK_FOLLOW: when the photo is itself a symlink, link the photo, not the symlink.
            guard linkat(AT_FDCWD, source, AT_FDCWD, target, AT_SYMLINK_FOLLOW) == 0 else {
                throw failure(path, "cannot hard-link: \(Self.errnoText())")
            }
        case .copy:
            // Copied under a temporary name, so an interrupted copy never looks like a finished one.
            let temporary = folder + "/." + path.split(separator: "/").last! + ".partial"
            unlink(temporary)
            do {
                try FileManager.default.copyItem(atPath: URL(fileURLWithPath: source).resolvingSymlinksInPath().path,
                                                 toPath: temporary)
            } catch {
                unlink(temporary)
                throw failure(path, "cannot copy: \(error.localizedDescription)")
            }
            guard rename(temporary, target) == 0 else {
                let reason = Self.errnoText()
                unlink(temporary)
                throw failure(path, "cannot copy: \(reason)")
            }
        }
        guard case .regular(let stamp) = Node(at: target) else { throw failure(path, "vanished right after it was made") }
        return ExportManifest.Entry(source: source, stamp: stamp)
    }

    /// A hard link whose photo is now another file (edited by a program that writes a new file and renames it).
    private func isStaleHardLink(_ entry: ExportManifest.Entry, source: String) -> Bool {
        guard link == .hardlink, case .regular(let current) = Node(following: source), let made = entry.stamp else { return false }
        return (current.device, current.inode) != (made.device, made.inode)
    }

    private func failure(_ path: String, _ reason: String) -> ExportProblem {
        ExportProblem(kind: .failed, path: path, detail: reason)
    }

    private func fullPath(_ relative: String) -> String { directory + "/" + relative }

    private static func isFolderAndFile(_ relativePath: String) -> Bool {
        let parts = relativePath.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." && !$0.contains("\0") }
    }

    private static func folder(of relativePath: String) -> String { String(relativePath.prefix { $0 != "/" }) }

    private static func withAbsolutePaths(_ person: ExportPerson) -> ExportPerson {
        let cwd = FileManager.default.currentDirectoryPath
        return ExportPerson(personID: person.personID, displayName: person.displayName, photos: person.photos.map {
            $0.path.hasPrefix("/") ? $0 : ExportPhoto(photoID: $0.photoID, path: cwd + "/" + $0.path)
        })
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// What is at a path, as far as the export cares.
private enum Node: Equatable {
    case absent
    case directory
    case regular(ExportFileStamp)
    case symlink(target: String)
    case other

    /// The path itself (`lstat`): a symlink is reported as one.
    init(at path: String) { self.init(path, followingSymlinks: false) }

    /// What the path leads to (`stat`).
    init(following path: String) { self.init(path, followingSymlinks: true) }

    private init(_ path: String, followingSymlinks: Bool) {
        var info = stat()
        guard (followingSymlinks ? stat(path, &info) : lstat(path, &info)) == 0 else {
            self = errno == ENOENT || errno == ENOTDIR ? .absent : .other
            return
        }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: self = .directory
        case S_IFLNK: self = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)).map { .symlink(target: $0) } ?? .other
        case S_IFREG:
            #if canImport(Darwin)
            let mtime = info.st_mtimespec
            #else
            let mtime = info.st_mtim
            #endif
            self = .regular(ExportFileStamp(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                                            modifiedNs: Int64(mtime.tv_sec) * 1_000_000_000 + Int64(mtime.tv_nsec)))
        default: self = .other
        }
    }

    var isRegularFile: Bool {
        if case .regular = self { return true }
        return false
    }

    /// This is the file the export made for `entry` in `mode`. A copy edited in place no longer is.
    func isMade(from entry: ExportManifest.Entry, as mode: ExportLinkMode) -> Bool {
        switch (mode, self) {
        case (.symlink, .symlink(let target)): return target == entry.source
        case (.hardlink, .regular(let stamp)): return (stamp.device, stamp.inode) == (entry.stamp?.device, entry.stamp?.inode)
        case (.copy, .regular(let stamp)): return stamp == entry.stamp
        default: return false
        }
    }
}
