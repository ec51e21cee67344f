/// Where other photo tools keep a photo's XMP (face names among it) beside the photo: `photo.jpg.xmp` (digiKam,
/// darktable), `photo.xmp` or `photo.XMP` (Lightroom). The ML service reads the first of them that holds face
/// regions (`ml-service/photo_sorter_ml/xmp_regions.py`, the same names in the same order); the scanner stamps a
/// photo with all of them that exist, so an edit of any is seen.
public enum XMPSidecar {
    /// The sidecar names a photo may have, preferred first: the whole name plus `.xmp`, then the name without its
    /// extension (Python's `os.path.splitext`) plus `.xmp` and `.XMP`.
    public static func candidates(forPhotoNamed name: String) -> [String] {
        let dot = name.lastIndex(of: ".").flatMap { $0 == name.startIndex ? nil : $0 }
        let stem = dot.map { String(name[..<$0]) } ?? name
        return dot == nil ? [stem + ".xmp", stem + ".XMP"] : [name + ".xmp", stem + ".xmp", stem + ".XMP"]
    }

    /// Whether a file of this name is a sidecar (`.xmp` in any case), not a photo.
    public static func isSidecar(_ name: String) -> Bool {
        name.count > 4 && name.suffix(4).lowercased() == ".xmp"
    }

    /// One stamp for the sidecars that exist (`stamps`: size:mtime of each, in `candidates` order), nil for none.
    public static func stamp(_ stamps: [String]) -> String? {
        stamps.isEmpty ? nil : stamps.joined(separator: " ")
    }
}
