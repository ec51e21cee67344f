/// Photo formats photo-sorter analyses. The content (magic bytes) decides the format, not the extension; the
/// raw values are stored in `photos.format`.
public enum PhotoFormat: String, Sendable, CaseIterable {
    case jpeg, png, heif, nef, cr2, webp, gif, bmp, tiff

    /// The format an extension claims (any case), or nil when the extension is not an image extension we know.
    public init?(fileExtension: String) {
        switch fileExtension.lowercased() {
        case "jpg", "jpeg", "jpe": self = .jpeg
        case "png": self = .png
        case "heic", "heif", "avif": self = .heif
        case "nef": self = .nef
        case "cr2": self = .cr2
        case "webp": self = .webp
        case "gif": self = .gif
        case "bmp", "dib": self = .bmp
        case "tif", "tiff": self = .tiff
        default: return nil
        }
    }

    /// The name people know the format by, for reasons ("extension says HEIF but …").
    public var displayName: String {
        switch self {
        case .webp: "WebP"
        default: rawValue.uppercased()
        }
    }

    /// The supported image format `header` (the first bytes of a file) carries, or nil.
    ///
    /// TIFF is the container of several camera RAW formats that its first bytes cannot tell apart: a TIFF file keeps
    /// `nef` when its extension says so. CR2 is recognised by content ("CR" at offset 8).
    public static func detect(header: [UInt8], fileExtension: String = "") -> PhotoFormat? {
        if case .image(let format) = FileContent.identify(header: header, fileExtension: fileExtension) { return format }
        return nil
    }
}

/// What the first bytes of a file say it is: a supported image, or what else it is (for the reason it is not queued).
public enum FileContent: Equatable, Sendable {
    case image(PhotoFormat)
    /// An ISO-BMFF (MP4, QuickTime), Matroska/WebM or AVI video.
    case video
    case text
    case unrecognised

    /// Bytes from the start of a file that `identify` looks at (the text check looks at up to this many).
    public static let headerLength = 1024

    /// ISO-BMFF brands of HEIF/AVIF still images (major or compatible brand of the `ftyp` box).
    private static let heifBrands: Set<String> = ["heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif", "avis"]
    /// ISO-BMFF brands of video files.
    private static let videoBrands: Set<String> = ["isom", "iso2", "iso4", "iso5", "iso6", "mp41", "mp42", "avc1", "qt  ", "M4V ", "M4VH",
                                                   "M4VP", "3gp4", "3gp5", "3gp6", "3g2a", "dash", "f4v ", "MSNV", "XAVC", "mmp4"]

    public static func identify(header: [UInt8], fileExtension: String = "") -> FileContent {
        let claimed = PhotoFormat(fileExtension: fileExtension)
        if header.starts(with: [0xFF, 0xD8, 0xFF]) { return .image(.jpeg) }
        if header.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .image(.png) }
        if header.starts(with: Array("GIF87a".utf8)) || header.starts(with: Array("GIF89a".utf8)) { return .image(.gif) }
        if header.starts(with: Array("BM".utf8)) && header.count >= 14 { return .image(.bmp) }
        if header.starts(with: [0x49, 0x49, 0x2A, 0x00]) || header.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) {
            if header.count >= 10 && header[8] == 0x43 && header[9] == 0x52 { return .image(.cr2) }
            return .image(claimed == .nef ? .nef : .tiff)
        }
        if header.count >= 12 && header.starts(with: Array("RIFF".utf8)) {
            switch String(decoding: header[8..<12], as: UTF8.self) {
            case "WEBP": return .image(.webp)
            case "AVI ": return .video
            default: return .unrecognised
            }
        }
        if header.starts(with: [0x1A, 0x45, 0xDF, 0xA3]) { return .video }
        if let brands = ftypBrands(header) {
            if brands.contains(where: heifBrands.contains) && !videoBrands.contains(brands[0]) { return .image(.heif) }
            return brands.contains(where: videoBrands.contains) ? .video : .unrecognised
        }
        return isText(header) ? .text : .unrecognised
    }

    /// Major brand first, then the compatible brands of an ISO-BMFF `ftyp` box (as far as `header` reaches).
    private static func ftypBrands(_ header: [UInt8]) -> [String]? {
        guard header.count >= 12, Array(header[4..<8]) == Array("ftyp".utf8) else { return nil }
        let boxSize = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        var brands = [String(decoding: header[8..<12], as: UTF8.self)]
        var offset = 16  // after the major brand and the minor version
        while offset + 4 <= min(boxSize, header.count) {
            brands.append(String(decoding: header[offset..<offset + 4], as: UTF8.self))
            offset += 4
        }
        return brands
    }

    /// Valid UTF-8 (a character cut at the end of the sample is allowed) without NUL or control characters other
    /// than tab, line feed, form feed and carriage return.
    private static func isText(_ header: [UInt8]) -> Bool {
        var sample = header.prefix(headerLength)
        if sample.isEmpty { return false }
        // Drop a multi-byte character the sample cut in two.
        if let lead = sample.lastIndex(where: { $0 & 0xC0 != 0x80 }), sample[lead] >= 0xC0 {
            let length = sample[lead] >= 0xF0 ? 4 : sample[lead] >= 0xE0 ? 3 : 2
            if sample.endIndex - lead < length { sample = sample[..<lead] }
        }
        guard String(validating: sample, as: UTF8.self) != nil else { return false }
        return !sample.contains { $0 < 0x20 && ![0x09, 0x0A, 0x0C, 0x0D].contains($0) || $0 == 0x7F }
    }

    /// For reasons: "content is text", "unrecognised content".
    var phrase: String {
        switch self {
        case .image(let format): "content is \(format.displayName)"
        case .video: "content is video"
        case .text: "content is text"
        case .unrecognised: "unrecognised content"
        }
    }
}
