/// Where other photo tools keep a photo's XMP (face names among it) beside the photo: `photo.jpg.xmp` (digiKam,
/// darktable), `photo.xmp` or `photo.XMP` (Lightroom). The ML service reads the first of them that holds face
/// regions (`ml-service/photo_sorter_ml/xmp_regions.py`, the same names in the same order); the scanner stamps a
/// photo with all of them that exist, so an edit of any is seen.
public enum XMPSidecar {
    /// The sidecar names a photo may have, preferred first: the whole name plus `.xmp`, then the name without its
    /// extension (Python's `os.path.splitext`) plus `.xmp` and `.XMP`.
    public static func candidates(forPhotoNamed name: String) -> [String] {
        let stem = stem(of: name)
        return stem.count == name.count ? [stem + ".xmp", stem + ".XMP"] : [name + ".xmp", stem + ".xmp", stem + ".XMP"]
    }

    /// The sidecars of each file of a folder (`names`, sidecars among them), each file's in `candidates` order: the
    /// same a photo's reader looks for. A name is split into its stem once, and only a name whose whole name or stem
    /// is a sidecar's is looked at further.
    public static func owners(of sidecars: Set<String>, among names: some Sequence<String>) -> [String: [String]] {
        let bases = Set(sidecars.map { $0.dropLast(4) })
        var owners: [String: [String]] = [:]
        for name in names where !sidecars.contains(name) && (bases.contains(name[...]) || bases.contains(stem(of: name))) {
            let found = candidates(forPhotoNamed: name).filter(sidecars.contains)
            if !found.isEmpty { owners[name] = found }
        }
        return owners
    }

    /// The name without its extension, as `os.path.splitext` cuts it (a leading dot is no extension).
    private static func stem(of name: String) -> Substring {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name[...] }
        return name[..<dot]
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
