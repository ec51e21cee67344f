#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A regular file whose extension is on the photo whitelist, as found by `DirectoryScanner`.
public struct ScannedFile: Sendable, Equatable {
    public let path: String
    public let filename: String
    public let format: PhotoFormat
    public let size: Int64
    /// Modification time, milliseconds since 1970.
    public let modifiedAtMs: Int64
}

/// Streams the photo files under a directory in a stable order (depth first, entries sorted by name).
///
/// Only one directory listing is held at a time per level of depth, so memory stays bounded on trees with
/// millions of files. The order is deterministic, which is what lets an interrupted ingest resume by
/// skipping the files of its completed batches. Symlinked directories are not followed (no cycles);
/// symlinked files are. Unreadable directories are skipped and reported through `unreadableDirectories`.
public struct DirectoryScanner: Sequence {
    public let root: String
    public let recursive: Bool

    public init(root: String, recursive: Bool = true) {
        self.root = root
        self.recursive = recursive
    }

    public func makeIterator() -> Iterator { Iterator(root: root, recursive: recursive) }

    /// The file at `path` (symlinks followed) when it is a regular file with a whitelisted extension.
    public static func photoFile(atPath path: String) -> ScannedFile? {
        let name = String(path.split(separator: "/").last ?? "")
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG,
              let dot = name.lastIndex(of: "."),
              let format = PhotoFormat(fileExtension: String(name[name.index(after: dot)...])) else { return nil }
        #if canImport(Darwin)
        let mtime = info.st_mtimespec
        #else
        let mtime = info.st_mtim
        #endif
        return ScannedFile(path: path, filename: name, format: format, size: Int64(info.st_size),
                           modifiedAtMs: Int64(mtime.tv_sec) * 1000 + Int64(mtime.tv_nsec) / 1_000_000)
    }

    public struct Iterator: IteratorProtocol {
        private let recursive: Bool
        /// Directories still to list, deepest last. Each level keeps its own sorted pending names.
        private var stack: [(directory: String, names: ArraySlice<String>)] = []
        public private(set) var unreadableDirectories: [String] = []

        init(root: String, recursive: Bool) {
            self.recursive = recursive
            if let names = Self.list(root) {
                stack.append((root, names[...]))
            } else {
                unreadableDirectories.append(root)
            }
        }

        public mutating func next() -> ScannedFile? {
            while let top = stack.last {
                guard let name = top.names.first else {
                    stack.removeLast()
                    continue
                }
                stack[stack.count - 1].names = top.names.dropFirst()
                let path = top.directory == "/" ? "/" + name : top.directory + "/" + name
                var info = stat()
                guard lstat(path, &info) == 0 else { continue }
                let type = info.st_mode & S_IFMT
                if type == S_IFDIR {
                    guard recursive else { continue }
                    if let names = Self.list(path) {
                        stack.append((path, names[...]))
                    } else {
                        unreadableDirectories.append(path)
                    }
                    continue
                }
                // Follow links to files only; a link to a directory could form a cycle.
                guard type == S_IFREG || type == S_IFLNK, let file = DirectoryScanner.photoFile(atPath: path) else { continue }
                return file
            }
            return nil
        }

        private static func list(_ directory: String) -> [String]? {
            guard let handle = opendir(directory) else { return nil }
            defer { closedir(handle) }
            var names: [String] = []
            while let entry = readdir(handle) {
                let name = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
                }
                if name == "." || name == ".." || name.hasPrefix(".") { continue }
                names.append(name)
            }
            return names.sorted()
        }
    }
}

/// Why a whitelisted file was not accepted as a photo.
public enum PhotoInspectionError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, errno: Int32)
    case signatureMismatch(path: String, expected: PhotoFormat)

    public var description: String {
        switch self {
        case .unreadable(let path, let code): "cannot read \(path): \(String(cString: strerror(code)))"
        case .signatureMismatch(let path, let format): "\(path) does not start with a \(format.rawValue) signature"
        }
    }
}

/// Reads the start of a scanned file once: checks its magic bytes and computes its sample hash.
public enum PhotoFileInspector {
    public static func sampleHash(of file: ScannedFile) throws(PhotoInspectionError) -> String {
        let descriptor = open(file.path, O_RDONLY)
        guard descriptor >= 0 else { throw .unreadable(path: file.path, errno: errno) }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: SampleHash.sampleLength)
        var filled = 0
        while filled < buffer.count {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, $0.count - filled) }
            if count < 0 { throw .unreadable(path: file.path, errno: errno) }
            if count == 0 { break }
            filled += count
        }
        let prefix = Array(buffer[0..<filled])
        guard file.format.matches(header: Array(prefix.prefix(PhotoFormat.signatureLength))) else {
            throw .signatureMismatch(path: file.path, expected: file.format)
        }
        return SampleHash.of(prefix: prefix, fileSize: file.size)
    }
}
