#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A regular file (or a symlink to one inside the allowed roots) found by `DirectoryScanner`. Whether it is a photo
/// is for `PhotoFileInspector` to say, from its content.
public struct ScannedFile: Sendable, Equatable {
    /// As found (a symlink keeps its own path; the ML service resolves it).
    public let path: String
    public let filename: String
    public let size: Int64
    /// Modification time, milliseconds since 1970.
    public let modifiedAtMs: Int64
    /// Size and modification time of the photo's XMP sidecar (`XMPSidecar`), nil when it has none: a sidecar
    /// edited in another tool changes the photo, so its face names are read again.
    public var sidecarStamp: String? = nil

    /// What follows the last dot of the name ("" when none; a leading dot does not count).
    public var fileExtension: String {
        guard let dot = filename.lastIndex(of: "."), dot != filename.startIndex else { return "" }
        return String(filename[filename.index(after: dot)...])
    }
}

/// A kind of file that is neither a regular file, a directory nor a symlink.
public enum SpecialFileKind: String, Sendable {
    case fifo = "FIFO", socket, device
}

/// Why an entry under a scanned folder is not queued for analysis; `description` is the reason users read.
public enum NotQueuedReason: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyFile
    /// The content is not an image and the extension claims no image format.
    case notAnImage(FileContent)
    case video
    /// The extension claims an image format the content does not have (and the content is no other image).
    case extensionMismatch(claimed: PhotoFormat, content: FileContent)
    case notRegularFile(SpecialFileKind)
    /// An XMP sidecar: read with its photo (face names), not a photo itself.
    case xmpSidecar
    case brokenSymlink
    case symlinkLoop
    case symlinkToDirectory
    case symlinkOutsideAllowedRoots
    case unreadable(errno: Int32)
    case unreadableDirectory(errno: Int32)
    /// Swift would replace the invalid bytes, giving a path that names no file: such entries are refused, not stored.
    case nameNotUTF8
    /// A sub-folder of a non-recursive scan.
    case folderNotScanned
    /// A single path (POST /classify-photo) that is a folder.
    case folder

    /// A folder the scan could not read: what was stored under it may still be there.
    public var isUnreadableDirectory: Bool {
        if case .unreadableDirectory = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .emptyFile: "empty file (0 bytes)"
        case .notAnImage(let content): "not a supported image (\(content.phrase))"
        case .video: "video, not analysed"
        case .extensionMismatch(let claimed, let content):
            "extension says \(claimed.displayName) but the content is not an image (\(content.phrase))"
        case .notRegularFile(let kind): "not a regular file (\(kind.rawValue))"
        case .xmpSidecar: "XMP sidecar (its face names are read with its photo)"
        case .brokenSymlink: "broken symlink"
        case .symlinkLoop: "symlink loop"
        case .symlinkToDirectory: "symlink to a directory (not followed)"
        case .symlinkOutsideAllowedRoots: "symlink target is outside the allowed roots"
        case .unreadable(let code): "cannot read: \(String(cString: strerror(code)))"
        case .unreadableDirectory(let code): "unreadable directory: \(String(cString: strerror(code)))"
        case .nameNotUTF8: "file name is not valid UTF-8 (rename it)"
        case .folderNotScanned: "folder not scanned (recursive is off)"
        case .folder: "a folder, not a file"
        }
    }
}

/// An entry that will not be analysed, with its reason.
public struct NotQueuedEntry: Sendable, Equatable {
    /// The entry's path; bytes of a name that are not UTF-8 are written `\xNN`.
    public let path: String
    public let reason: NotQueuedReason

    public init(path: String, reason: NotQueuedReason) {
        self.path = path
        self.reason = reason
    }
}

/// One entry of a scan: a file to inspect, or an entry already known not to be a photo.
public enum ScanEntry: Sendable, Equatable {
    case file(ScannedFile)
    case notQueued(NotQueuedEntry)

    public var path: String {
        switch self {
        case .file(let file): file.path
        case .notQueued(let entry): entry.path
        }
    }
}

/// Streams every entry under a directory in a stable order (depth first, entries sorted by name), each either a
/// file to inspect or a not-queued entry with its reason — nothing is dropped without a word, except hidden entries
/// (names starting with "."), which are skipped silently with everything under them (thumbnail caches, `.git`), and
/// XMP sidecars beside the file they belong to, which go with that file (`ScannedFile.sidecarStamp`).
///
/// Only one directory listing is held at a time per level of depth, so memory stays bounded on trees with
/// millions of files. The order is deterministic and not-queued entries are entries like any other, which is what
/// lets an interrupted ingest resume by skipping the entries of its completed batches. The scanner only lists and
/// stats: reading content is `PhotoFileInspector`'s job. Directories are descended into; symlinks are followed to
/// files only (a link to a directory could form a cycle), and only when their target lies inside `allowedRoots`.
public struct DirectoryScanner: Sequence {
    public let root: String
    public let recursive: Bool
    /// The folders a symlink's target must lie in; nil: anywhere.
    public let allowedRoots: AllowedRoots?

    /// `allowedRoots`: the folders symlinks may point into (the service's allowed ingest roots); nil when any
    /// folder may be ingested.
    public init(root: String, recursive: Bool = true, allowedRoots: [String]? = nil) {
        self.root = root
        self.recursive = recursive
        self.allowedRoots = allowedRoots.map(AllowedRoots.init)
    }

    public func makeIterator() -> Iterator { Iterator(root: root, recursive: recursive, allowedRoots: allowedRoots) }

    /// A single path (symlinks followed under the same rules as in a scan).
    public static func entry(atPath path: String, allowedRoots: [String]?) -> ScanEntry {
        let name = String(path.split(separator: "/").last ?? "")
        switch classify(path, name: name, allowedRoots: allowedRoots.map(AllowedRoots.init)) {
        case .directory: return .notQueued(NotQueuedEntry(path: path, reason: .folder))
        case .entry(.file(var file)):
            file.sidecarStamp = XMPSidecar.stamp(XMPSidecar.candidates(forPhotoNamed: name).compactMap { stamp(ofSidecar: directory(of: path) + "/" + $0) })
            return .file(file)
        case .entry(let entry): return entry
        }
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "" : String(path[..<slash])
    }

    /// "size:mtime" of the regular file at `path`, nil when there is none.
    static func stamp(ofSidecar path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        let file = ScannedFile(path: path, name: "", info: info)
        return "\(file.size):\(file.modifiedAtMs)"
    }

    private enum Classified {
        case directory
        case entry(ScanEntry)
    }

    /// What the entry at `path` is, from `lstat` (and, for a symlink, `realpath` and `stat` of its target).
    private static func classify(_ path: String, name: String, allowedRoots: AllowedRoots?) -> Classified {
        func notQueued(_ reason: NotQueuedReason) -> Classified { .entry(.notQueued(NotQueuedEntry(path: path, reason: reason))) }
        var info = stat()
        guard lstat(path, &info) == 0 else { return notQueued(.unreadable(errno: errno)) }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .entry(.file(ScannedFile(path: path, name: name, info: info)))
        case S_IFLNK: break
        default: return notQueued(.notRegularFile(SpecialFileKind(mode: info.st_mode)))
        }
        guard let resolved = realpath(path, nil) else {
            let code = errno
            switch code {
            case ELOOP: return notQueued(.symlinkLoop)
            case ENOENT, ENOTDIR: return notQueued(.brokenSymlink)
            default: return notQueued(.unreadable(errno: code))
            }
        }
        let target = String(cString: resolved)
        free(resolved)
        if let allowedRoots, !allowedRoots.contains(canonicalPath: target) {
            return notQueued(.symlinkOutsideAllowedRoots)
        }
        guard stat(target, &info) == 0 else { return notQueued(.unreadable(errno: errno)) }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return notQueued(.symlinkToDirectory)
        case S_IFREG: return .entry(.file(ScannedFile(path: path, name: name, info: info)))
        default: return notQueued(.notRegularFile(SpecialFileKind(mode: info.st_mode)))
        }
    }

    public struct Iterator: IteratorProtocol {
        private let recursive: Bool
        private let allowedRoots: AllowedRoots?
        /// Directories still to list, deepest last. Each level keeps its own sorted pending names, and the names of
        /// its XMP sidecars.
        private var stack: [Level] = []

        private struct Level {
            let directory: String
            var names: ArraySlice<Name>
            /// Every XMP sidecar of the folder, and for each file with sidecars, its sidecars (`XMPSidecar.owners`).
            let sidecars: Set<String>
            let sidecarsOfFile: [String: [String]]
            let claimedSidecars: Set<String>
        }
        /// The root's own problem, reported as the first entry.
        private var unreadableRoot: ScanEntry?

        private struct Name {
            /// The name, with bytes that are not UTF-8 written `\xNN`.
            let text: String
            let isUTF8: Bool
        }

        init(root: String, recursive: Bool, allowedRoots: AllowedRoots?) {
            self.recursive = recursive
            self.allowedRoots = allowedRoots
            do {
                stack.append(Self.level(root, try Self.list(root)))
            } catch {
                unreadableRoot = .notQueued(NotQueuedEntry(path: root, reason: error))
            }
        }

        public mutating func next() -> ScanEntry? {
            if let entry = unreadableRoot {
                unreadableRoot = nil
                return entry
            }
            while let top = stack.last {
                guard let name = top.names.first else {
                    stack.removeLast()
                    continue
                }
                stack[stack.count - 1].names = top.names.dropFirst()
                let path = top.directory == "/" ? "/" + name.text : top.directory + "/" + name.text
                guard name.isUTF8 else { return .notQueued(NotQueuedEntry(path: path, reason: .nameNotUTF8)) }
                if top.sidecars.contains(name.text) {
                    // A sidecar beside its file goes with it (its stamp is the file's); one alone is skipped, unopened.
                    if top.claimedSidecars.contains(name.text) { continue }
                    return .notQueued(NotQueuedEntry(path: path, reason: .xmpSidecar))
                }
                switch DirectoryScanner.classify(path, name: name.text, allowedRoots: allowedRoots) {
                case .entry(.file(var file)):
                    if let sidecars = top.sidecarsOfFile[name.text] {
                        file.sidecarStamp = XMPSidecar.stamp(sidecars.compactMap { DirectoryScanner.stamp(ofSidecar: top.directory + "/" + $0) })
                    }
                    return .file(file)
                case .entry(let entry):
                    return entry
                case .directory:
                    guard recursive else { return .notQueued(NotQueuedEntry(path: path, reason: .folderNotScanned)) }
                    do {
                        stack.append(Self.level(path, try Self.list(path)))
                    } catch {
                        return .notQueued(NotQueuedEntry(path: path, reason: error))
                    }
                }
            }
            return nil
        }

        private static func level(_ directory: String, _ names: [Name]) -> Level {
            let sidecars = Set(names.lazy.map(\.text).filter(XMPSidecar.isSidecar))
            let owners = sidecars.isEmpty ? [:] : XMPSidecar.owners(of: sidecars, among: names.lazy.map(\.text))
            return Level(directory: directory, names: names[...], sidecars: sidecars, sidecarsOfFile: owners,
                         claimedSidecars: Set(owners.values.joined()))
        }

        private static func list(_ directory: String) throws(NotQueuedReason) -> [Name] {
            guard let handle = opendir(directory) else { throw .unreadableDirectory(errno: errno) }
            defer { closedir(handle) }
            var names: [Name] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
                if name.first == UInt8(ascii: ".") { continue }
                if let text = String(validating: name, as: UTF8.self) {
                    names.append(Name(text: text, isUTF8: true))
                } else {
                    names.append(Name(text: escaped(name), isUTF8: false))
                }
            }
            return names.sorted { $0.text < $1.text }
        }

        /// The name with every byte that is not part of a valid UTF-8 sequence written `\xNN` (unique and readable).
        private static func escaped(_ bytes: [UInt8]) -> String {
            var text = ""
            var index = 0
            while index < bytes.count {
                let lead = bytes[index]
                let length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0
                if length > 0, index + length <= bytes.count,
                   let character = String(validating: bytes[index..<index + length], as: UTF8.self) {
                    text += character
                    index += length
                } else {
                    text += "\\x" + String(lead, radix: 16, uppercase: true).leftPadded(to: 2)
                    index += 1
                }
            }
            return text
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

private extension ScannedFile {
    init(path: String, name: String, info: stat) {
        #if canImport(Darwin)
        let mtime = info.st_mtimespec
        #else
        let mtime = info.st_mtim
        #endif
        self.init(path: path, filename: name, size: Int64(info.st_size),
                  modifiedAtMs: Int64(mtime.tv_sec) * 1000 + Int64(mtime.tv_nsec) / 1_000_000)
    }
}

private extension SpecialFileKind {
    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        default: self = .device
        }
    }
}

/// A scanned file whose content is a supported image.
public struct InspectedPhoto: Sendable, Equatable {
    public let file: ScannedFile
    /// From the content.
    public let format: PhotoFormat
    public let sampleHash: String

    /// The extension claims another format than the content has (or none): the file is analysed as its content.
    public var extensionDisagrees: Bool { PhotoFormat(fileExtension: file.fileExtension) != format }
}

/// Reads the start of a scanned file once: identifies the format from its magic bytes and computes its sample hash.
public enum PhotoFileInspector {
    public static func inspect(_ file: ScannedFile) throws(NotQueuedReason) -> InspectedPhoto {
        guard !XMPSidecar.isSidecar(file.filename) else { throw .xmpSidecar }
        guard file.size > 0 else { throw .emptyFile }
        // O_NONBLOCK: a file swapped for a FIFO since the scan does not hang the open.
        let descriptor = open(file.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(errno: errno) }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: min(SampleHash.sampleLength, Int(file.size)))
        var filled = 0
        while filled < buffer.count {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, $0.count - filled) }
            if count < 0 { throw .unreadable(errno: errno) }
            if count == 0 { break }
            filled += count
        }
        guard filled > 0 else { throw .emptyFile }
        let prefix = Array(buffer[0..<filled])
        switch FileContent.identify(header: Array(prefix.prefix(FileContent.headerLength)), fileExtension: file.fileExtension) {
        case .image(let format):
            return InspectedPhoto(file: file, format: format, sampleHash: SampleHash.of(prefix: prefix, fileSize: file.size))
        case .video:
            throw .video
        case let content:
            if let claimed = PhotoFormat(fileExtension: file.fileExtension) { throw .extensionMismatch(claimed: claimed, content: content) }
            throw .notAnImage(content)
        }
    }
}
