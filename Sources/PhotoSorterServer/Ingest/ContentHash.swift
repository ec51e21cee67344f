import Crypto
import Foundation
import Vapor

/// The identity of a file's content: SHA-256 of every byte, as lower-case hex (`photos.full_hash`). A path that
/// appears with the content of a photo whose old path is gone is that photo, moved; with the content of a photo
/// still on disk, a copy. The sample hash (first 64 KiB and the size) only finds the candidates.
enum ContentHash {
    /// Bytes read per `read(2)`: the file streams through the hash, whatever its size.
    static let chunkSize = 1 << 20

    /// The hash of the file at `path`, or nil when it cannot be read to its end (it vanished or is unreadable: the
    /// scan then treats the file as new content).
    static func of(path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var hasher = SHA256()
        // No larger than the file (most are a few MB, scans of small files are common): a zero-filled 1 MiB buffer per
        // file was a tenth of a scan's time on small files.
        var info = stat()
        let size = fstat(descriptor, &info) == 0 ? Int(info.st_size) : chunkSize
        var buffer = [UInt8](repeating: 0, count: max(1, min(chunkSize, size + 1)))
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if count < 0 { return nil }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return hasher.finalize().hex
    }
}
