/// Where other photo tools keep a photo's XMP (face names among it) beside the photo: `photo.jpg.xmp` (digiKam,
/// darktable) or `photo.xmp` (Lightroom). The scanner stamps each photo with its sidecar and the ML service reads
/// the same one, in the same order of preference.
public enum XMPSidecar {
    /// The sidecar names a photo may have, preferred first: the whole name plus `.xmp`, then the name without its
    /// extension plus `.xmp`, each in lower and upper case.
    public static func candidates(forPhotoNamed name: String) -> [String] {
        var names = [name + ".xmp", name + ".XMP"]
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            let stem = name[..<dot]
            names += [stem + ".xmp", stem + ".XMP"]
        }
        return names
    }

    /// Whether a file of this name is a sidecar (`.xmp` in any case), not a photo.
    public static func isSidecar(_ name: String) -> Bool {
        name.count > 4 && name.suffix(4).lowercased() == ".xmp"
    }
}
