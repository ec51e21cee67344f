/// Photo formats photo-sorter ingests, recognised by extension (any case) and confirmed by magic bytes.
public enum PhotoFormat: String, Sendable, CaseIterable {
    case jpeg, png, heif, nef, cr2

    /// The format an extension claims, or nil when the extension is not on the whitelist.
    public init?(fileExtension: String) {
        switch fileExtension.lowercased() {
        case "jpg", "jpeg": self = .jpeg
        case "png": self = .png
        case "heic", "heif": self = .heif
        case "nef": self = .nef
        case "cr2": self = .cr2
        default: return nil
        }
    }

    /// Bytes needed from the start of a file to check its signature.
    public static let signatureLength = 12

    /// Whether `header` (the first bytes of the file) carries this format's signature.
    /// NEF is a TIFF container; CR2 is TIFF with "CR" at offset 8; HEIF is an ISO-BMFF `ftyp` box with a HEIF brand.
    public func matches(header: [UInt8]) -> Bool {
        switch self {
        case .jpeg:
            return header.starts(with: [0xFF, 0xD8, 0xFF])
        case .png:
            return header.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        case .heif:
            guard header.count >= 12, Array(header[4..<8]) == Array("ftyp".utf8) else { return false }
            let brand = String(decoding: header[8..<12], as: UTF8.self)
            return ["heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif"].contains(brand)
        case .nef:
            return Self.isTIFF(header)
        case .cr2:
            return Self.isTIFF(header) && header.count >= 10 && header[8] == 0x43 && header[9] == 0x52
        }
    }

    private static func isTIFF(_ header: [UInt8]) -> Bool {
        header.starts(with: [0x49, 0x49, 0x2A, 0x00]) || header.starts(with: [0x4D, 0x4D, 0x00, 0x2A])
    }
}
