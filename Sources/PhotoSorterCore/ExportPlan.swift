/// One photo of a person to export.
public struct ExportPhoto: Sendable, Hashable {
    public let photoID: Int64
    /// Absolute path of the photo in the library.
    public let path: String

    public init(photoID: Int64, path: String) {
        self.photoID = photoID
        self.path = path
    }
}

/// One person to export: a folder named after them holding their photos.
public struct ExportPerson: Sendable {
    public let personID: Int64
    public let displayName: String?
    public let photos: [ExportPhoto]

    public init(personID: Int64, displayName: String?, photos: [ExportPhoto]) {
        self.personID = personID
        self.displayName = displayName
        self.photos = photos
    }
}

/// How an exported file refers to its photo.
public enum ExportLinkMode: String, CaseIterable, Codable, Sendable {
    /// A symbolic link to the photo's absolute path.
    case symlink
    /// A hard link to the photo (same file system only).
    case hardlink
    /// An independent copy of the photo.
    case copy
}

/// Identity of a regular file the export made, to tell later whether the file is still ours.
public struct ExportFileStamp: Codable, Sendable, Hashable {
    public let device: UInt64
    public let inode: UInt64
    public let size: Int64
    /// Modification time, nanoseconds since 1970.
    public let modifiedNs: Int64

    public init(device: UInt64, inode: UInt64, size: Int64, modifiedNs: Int64) {
        self.device = device
        self.inode = inode
        self.size = size
        self.modifiedNs = modifiedNs
    }

    enum CodingKeys: String, CodingKey {
        case device, inode, size
        case modifiedNs = "modified_ns"
    }
}

/// What one export run left in its directory (`DIR/.photo-sorter-export.json`). Only files listed here are
/// ever removed by a later run.
public struct ExportManifest: Codable, Sendable, Equatable {
    public static let fileName = ".photo-sorter-export.json"
    public static let currentVersion = 1

    /// One file the export made.
    public struct Entry: Codable, Sendable, Equatable {
        /// The photo it refers to (absolute path).
        public let source: String
        /// The file as made; nil for a symlink, which is recognised by its target instead.
        public let stamp: ExportFileStamp?

        public init(source: String, stamp: ExportFileStamp?) {
            self.source = source
            self.stamp = stamp
        }
    }

    public let version: Int
    public let link: ExportLinkMode
    /// Relative path (`<folder>/<file>`) → entry.
    public let entries: [String: Entry]

    public init(link: ExportLinkMode, entries: [String: Entry]) {
        self.version = Self.currentVersion
        self.link = link
        self.entries = entries
    }
}

/// The tree an export wants and how it differs from the previous run's manifest. Pure: it reads nothing
/// from disk; `ExportWriter` checks each step against the file system.
///
/// Folder names come from `folderNames(for:)`, file names from `fileNames(for:)`. Every list is sorted.
public struct ExportPlan: Sendable, Equatable {
    /// Relative path (`<folder>/<file>`) → source photo path.
    public let wanted: [String: String]
    /// Wanted paths the previous run did not make (new, or with another source, or in another link mode).
    public let create: [String]
    /// Previous entries that are no longer wanted, or that another source or link mode replaces.
    public let remove: [String]
    /// Wanted paths the previous run already made from the same source in the same link mode.
    public let keep: [String]
    /// The person folders of the wanted tree.
    public let folders: [String]

    public init(persons: [ExportPerson], link: ExportLinkMode, previous: ExportManifest?) {
        var wanted: [String: String] = [:]
        let folderNames = Self.folderNames(for: persons)
        for person in persons {
            guard let folder = folderNames[person.personID] else { continue }
            let photos = Self.uniquePhotos(person.photos)
            let fileNames = Self.fileNames(for: photos)
            for photo in photos { wanted[folder + "/" + fileNames[photo.photoID]!] = photo.path }
        }
        // Another link mode makes every previous file the wrong kind: all of them are replaced.
        let reusable = previous.flatMap { $0.link == link ? $0.entries : nil } ?? [:]
        self.wanted = wanted
        self.keep = wanted.filter { reusable[$0.key]?.source == $0.value }.keys.sorted()
        let kept = Set(keep)
        self.create = wanted.keys.filter { !kept.contains($0) }.sorted()
        self.remove = (previous?.entries.keys.filter { !kept.contains($0) } ?? []).sorted()
        self.folders = Set(wanted.keys.map { String($0.prefix { $0 != "/" }) }).sorted()
    }

    /// Folder name per person id, for persons with at least one photo. The display name made safe as one path
    /// component, else `person-<id>`. A name several persons share (ignoring case, for case-insensitive file
    /// systems) becomes `Name (<id>)` for each of them, so no folder depends on which person came first.
    public static func folderNames(for persons: [ExportPerson]) -> [Int64: String] {
        let named = persons.filter { !$0.photos.isEmpty }.map { person in
            (id: person.personID, base: person.displayName.flatMap(safeFolderName) ?? "person-\(person.personID)")
        }
        return disambiguated(named) { base, id in "\(base) (\(id))" }
    }

    /// File name per photo id within one folder: the photo's file name; a name several photos share (ignoring
    /// case) gets `-<photoID>` before the extension for each of them.
    public static func fileNames(for photos: [ExportPhoto]) -> [Int64: String] {
        let named = photos.map { photo in
            let name = String(photo.path.split(separator: "/").last ?? "")
            return (id: photo.photoID, base: name.isEmpty ? "photo-\(photo.photoID)" : name)
        }
        return disambiguated(named) { name, id in
            let dot = name.lastIndex(of: ".").flatMap { $0 == name.startIndex ? nil : $0 } ?? name.endIndex
            let suffix = "-\(id)", ext = String(name[dot...])
            let stem = truncated(String(name[..<dot]), maxBytes: max(0, maxNameBytes - suffix.utf8.count - ext.utf8.count))
            return stem + suffix + ext
        }
    }

    /// Longest file or folder name most file systems accept, in UTF-8 bytes.
    static let maxNameBytes = 255
    /// Room kept in a folder name for a ` (<id>)` suffix.
    static let maxFolderBaseBytes = 200
    static let maxFolderBaseCharacters = 100

    /// `name` as one safe path component: `/`, NUL and other control characters become spaces, leading dots go
    /// (no hidden folders, no `.` or `..`), surrounding whitespace is trimmed and the length capped. Nil when
    /// nothing is left.
    static func safeFolderName(_ name: String) -> String? {
        let cleaned = String(name.map { $0 == "/" || $0.unicodeScalars.contains { $0.properties.generalCategory == .control } ? " " : $0 })
        let visible = trimmed(cleaned.drop { $0 == "." || $0.isWhitespace })
        let capped = trimmed(truncated(String(visible.prefix(maxFolderBaseCharacters)), maxBytes: maxFolderBaseBytes)[...])
        return capped.isEmpty ? nil : capped
    }

    private static func trimmed(_ text: Substring) -> String {
        String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }

    /// The longest prefix of `text` (whole characters) of at most `maxBytes` UTF-8 bytes.
    private static func truncated(_ text: String, maxBytes: Int) -> String {
        var bytes = 0
        return String(text.prefix { character in
            bytes += character.utf8.count
            return bytes <= maxBytes
        })
    }

    /// The same photo listed twice (a person with two faces in it) is exported once.
    private static func uniquePhotos(_ photos: [ExportPhoto]) -> [ExportPhoto] {
        var seen = Set<Int64>()
        return photos.filter { seen.insert($0.photoID).inserted }
    }

    /// Final name per id: the base name, or `suffixed(base, id)` for every id whose name another id shares.
    /// Repeats until no name is shared, since a suffixed name can equal another's base name (`Ann (5)`);
    /// suffixed names never equal each other, as they end in distinct ids.
    private static func disambiguated(_ items: [(id: Int64, base: String)],
                                      suffixed: (String, Int64) -> String) -> [Int64: String] {
        var needsSuffix = Set<Int64>()
        while true {
            let names = Dictionary(items.map { ($0.id, needsSuffix.contains($0.id) ? suffixed($0.base, $0.id) : $0.base) },
                                   uniquingKeysWith: { first, _ in first })
            let idsByKey = Dictionary(grouping: names.keys) { names[$0]!.lowercased() }
            let clashing = idsByKey.values.filter { $0.count > 1 }.flatMap { $0 }.filter { !needsSuffix.contains($0) }
            if clashing.isEmpty { return names }
            needsSuffix.formUnion(clashing)
        }
    }
}
