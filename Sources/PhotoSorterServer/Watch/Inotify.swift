import Glibc

/// One event of the kernel's inotify queue, as `read(2)` returns it.
struct InotifyEvent: Equatable, Sendable {
    /// The watch it came from (-1 for a queue overflow).
    let watch: Int32
    let mask: UInt32
    /// Pairs an `IN_MOVED_FROM` with its `IN_MOVED_TO`.
    let cookie: UInt32
    /// The entry of the watched folder the event is about; empty for the folder itself.
    let name: String

    func has(_ flag: Int32) -> Bool { mask & UInt32(flag) != 0 }
}

/// An inotify call that failed, with what it was given and the errno it set.
struct InotifyError: Error, CustomStringConvertible {
    let call: String
    let path: String?
    let code: Int32

    /// `inotify_add_watch` hit `fs.inotify.max_user_watches`.
    var isWatchLimit: Bool { code == ENOSPC }

    var description: String {
        "\(call)\(path.map { " \($0)" } ?? ""): \(String(cString: strerror(code))) (errno \(code))"
    }
}

/// An inotify instance: watches folders and reads their events with a timeout, so the thread that reads can stop.
/// Not thread-safe: one thread owns it (`FolderWatchReader`).
final class Inotify {
    /// What a folder is watched for: entries created, written, changed or gone, and the folder itself deleted or
    /// moved. Symlinks are not followed (a watched tree is the real folders below a root), and an unlinked file still
    /// open for writing sends nothing more.
    static let folderMask = UInt32(IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE
                                   | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

    private let descriptor: Int32
    /// Room for at least a few hundred events per read (each is 16 bytes plus its name).
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    init() throws(InotifyError) {
        descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { throw InotifyError(call: "inotify_init1", path: nil, code: errno) }
    }

    deinit { close(descriptor) }

    /// Watches `folder` (the same folder again answers the same watch).
    func watch(_ folder: String) throws(InotifyError) -> Int32 {
        let watch = inotify_add_watch(descriptor, folder, Self.folderMask)
        guard watch >= 0 else { throw InotifyError(call: "inotify_add_watch", path: folder, code: errno) }
        return watch
    }

    /// Stops a watch; the kernel then sends `IN_IGNORED` for it.
    func unwatch(_ watch: Int32) {
        inotify_rm_watch(descriptor, watch)
    }

    /// The events queued now, waiting up to `timeoutMs` for the first; none when the time is up.
    func read(timeoutMs: Int32) throws(InotifyError) -> [InotifyEvent] {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, timeoutMs)
        if ready < 0 {
            if errno == EINTR { return [] }
            throw InotifyError(call: "poll", path: nil, code: errno)
        }
        guard ready > 0 else { return [] }
        let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EAGAIN || errno == EINTR { return [] }
            throw InotifyError(call: "read", path: nil, code: errno)
        }
        return Self.parse(buffer[..<count])
    }

    /// `struct inotify_event` records: wd, mask, cookie, len (4 bytes each), then `len` bytes of NUL-padded name.
    static func parse(_ bytes: ArraySlice<UInt8>) -> [InotifyEvent] {
        var events: [InotifyEvent] = []
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset + 16 <= raw.count {
                let watch = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                let cookie = raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
                let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                let nameBytes = raw[(offset + 16)..<min(offset + 16 + length, raw.count)].prefix { $0 != 0 }
                events.append(InotifyEvent(watch: watch, mask: mask, cookie: cookie, name: String(decoding: nameBytes, as: UTF8.self)))
                offset += 16 + length
            }
        }
        return events
    }
}
