import PhotoSorterCore

/// Puts a photo's named faces (`SidecarFaces`) into an XMP packet, leaving everything else in it as it was.
///
/// - MWG regions: the regions photo-sorter wrote before (each marked with `mwg-rs:Extensions/photosorter:FaceID`)
///   are replaced by one `Face` region per named face; regions without the marker (other tools') stay untouched.
///   `AppliedToDimensions` is set to the displayed size. With no named face left, photo-sorter's regions are only
///   removed (and the `mwg-rs:Regions` struct with them when nothing else is in it).
/// - Keywords: `dc:subject`, `lr:hierarchicalSubject`, `digiKam:TagsList` as `PeopleKeywords` decides, and the names
///   photo-sorter recorded in `photosorter:Keywords`.
enum FaceRegionsXMP {
    private static let ns = XMPNamespace.regions
    private static let list = "mwg-rs:Regions/mwg-rs:RegionList"

    static func apply(_ faces: SidecarFaces, to packet: XMPPacket) throws(XMPError) {
        let removed = removeOwnRegions(from: packet)
        if faces.regions.isEmpty {
            if removed > 0 && packet.count(ns, list) == 0 { packet.delete(ns, "mwg-rs:Regions") }
        } else {
            let dimensions = "mwg-rs:Regions/mwg-rs:AppliedToDimensions"
            try packet.set(ns, "\(dimensions)/stDim:w", "\(faces.width)")
            try packet.set(ns, "\(dimensions)/stDim:h", "\(faces.height)")
            try packet.set(ns, "\(dimensions)/stDim:unit", "pixel")
            for region in faces.regions { try append(region, to: packet) }
        }
        try updateKeywords(for: faces.names, in: packet)
    }

    /// Whether photo-sorter wrote into this packet before: a region with its marker, or its record of keywords.
    static func holdsOwnMarks(_ packet: XMPPacket) -> Bool {
        packet.exists(XMPNamespace.photoSorter, "photosorter:Keywords")
            || (0..<packet.count(ns, list)).contains { packet.exists(ns, "\(list)[\($0 + 1)]/mwg-rs:Extensions/photosorter:FaceID") }
    }

    /// Deletes every region carrying photo-sorter's marker; returns how many.
    private static func removeOwnRegions(from packet: XMPPacket) -> Int {
        var removed = 0
        for index in stride(from: packet.count(ns, list), through: 1, by: -1)
        where packet.exists(ns, "\(list)[\(index)]/mwg-rs:Extensions/photosorter:FaceID") {
            packet.delete(ns, "\(list)[\(index)]")
            removed += 1
        }
        return removed
    }

    private static func append(_ region: FaceRegion, to packet: XMPPacket) throws(XMPError) {
        try packet.appendStruct(ns, toBag: list)
        let item = "\(list)[last()]"
        try packet.set(ns, "\(item)/mwg-rs:Name", region.name)
        try packet.set(ns, "\(item)/mwg-rs:Type", "Face")
        for (field, value) in [("x", region.x), ("y", region.y), ("w", region.w), ("h", region.h)] {
            try packet.set(ns, "\(item)/mwg-rs:Area/stArea:\(field)", FaceRegion.text(value))
        }
        try packet.set(ns, "\(item)/mwg-rs:Area/stArea:unit", "normalized")
        try packet.set(ns, "\(item)/mwg-rs:Extensions/photosorter:FaceID", "\(region.faceID)")
    }

    /// The three keyword arrays and photo-sorter's record, each edited in place: stale items deleted, new ones appended.
    private static func updateKeywords(for names: [String], in packet: XMPPacket) throws(XMPError) {
        let arrays: [(ns: String, path: String, ordered: Bool)] = [
            (XMPNamespace.dublinCore, "dc:subject", false), (XMPNamespace.lightroom, "lr:hierarchicalSubject", false),
            (XMPNamespace.digiKam, "digiKam:TagsList", true), (XMPNamespace.photoSorter, "photosorter:Keywords", false),
        ]
        let before = arrays.map { packet.items($0.ns, $0.path) }
        let updated = PeopleKeywords(subject: before[0], hierarchical: before[1], tags: before[2], recorded: before[3]).updated(for: names)
        for (array, (old, new)) in zip(arrays, zip(before, [updated.subject, updated.hierarchical, updated.tags, updated.recorded])) {
            // Only deletions and appends: `updated` keeps the survivors' order, so the items left equal new's prefix.
            let kept = Set(new)
            for index in stride(from: old.count, through: 1, by: -1) where !kept.contains(old[index - 1]) {
                packet.delete(array.ns, "\(array.path)[\(index)]")
            }
            for value in new.dropFirst(packet.count(array.ns, array.path)) {
                try packet.append(array.ns, to: array.path, value, ordered: array.ordered)
            }
            if new.isEmpty && !old.isEmpty { packet.delete(array.ns, array.path) }
        }
    }
}
