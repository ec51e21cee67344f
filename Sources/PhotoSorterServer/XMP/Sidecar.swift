import Foundation

/// Why a photo's sidecar was not written.
enum SidecarError: Error, Equatable, CustomStringConvertible {
    /// The photo has no stored size (not analysed), so its regions cannot be placed.
    case noSize
    case tooLarge(bytes: Int)
    /// The existing sidecar cannot be read or is not XMP; it is left as it is.
    case unreadable(String)
    case cannotWrite(String)

    var description: String {
        switch self {
        case .noSize: "the photo has no stored size"
        case .tooLarge(let bytes): "the existing sidecar is too large (\(bytes) bytes, at most \(XMPWriteService.largestSidecar))"
        case .unreadable(let why): "the existing sidecar cannot be read: \(why)"
        case .cannotWrite(let why): "cannot write the sidecar: \(why)"
        }
    }
}

/// A sidecar file on disk: read whole, replaced atomically.
enum Sidecar {
    /// Whether anything is at `path` (a folder there is found too, and then fails to read, rather than being passed by).
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// The sidecar's bytes; nil when there is none.
    static func read(_ path: String) throws(SidecarError) -> Data? {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .unreadable(String(cString: strerror(errno)))
        }
        defer { try? handle.close() }
        do {
            let size = try handle.seekToEnd()
            guard size <= XMPWriteService.largestSidecar else { throw SidecarError.tooLarge(bytes: Int(size)) }
            try handle.seek(toOffset: 0)
            return try handle.readToEnd() ?? Data()
        } catch let error as SidecarError {
            throw error
        } catch {
            throw .unreadable(error.localizedDescription)
        }
    }

    /// Writes `content` to a temporary file in the sidecar's folder and renames it over the sidecar, so a reader sees
    /// the old sidecar or the new one, never a part. A replaced sidecar keeps its permissions.
    static func replace(_ path: String, with content: Data) throws(SidecarError) {
        var info = stat()
        let mode = stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0o644
        let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        let temporary = "\(path[..<slash]).\(path[slash...]).\(UUID().uuidString.prefix(8)).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw .cannotWrite(String(cString: strerror(errno))) }
        let written = content.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let count = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if count <= 0 { return false }
                offset += count
            }
            return true
        }
        let reason = String(cString: strerror(errno))
        close(descriptor)
        guard written else {
            unlink(temporary)
            throw .cannotWrite(reason)
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .cannotWrite(reason)
        }
    }
}
