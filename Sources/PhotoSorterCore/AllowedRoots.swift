#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The folders the service may read (`PHOTO_SORTER_ALLOWED_ROOTS`), canonicalised once with `realpath`. A path is
/// inside when its own canonical form is one of them or lies below one: the one check behind ingest folders and the
/// symlinks a scan follows.
public struct AllowedRoots: Sendable, Equatable {
    public let folders: [String]

    public init(_ folders: [String]) {
        self.folders = folders.map(Self.canonical)
    }

    /// `path` must already be canonical (symlinks and `..` resolved).
    public func contains(canonicalPath path: String) -> Bool {
        folders.contains { path == $0 || path.hasPrefix($0 == "/" ? "/" : $0 + "/") }
    }

    /// `realpath` of `path`, or `path` itself when it cannot be resolved (a root that does not exist yet).
    public static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
