import Foundation

/// A face with the name of its person, as stored: its box in photo-sorter's upright frame of the photo (EXIF
/// orientation applied, then the photo's `quarter_turns`; `BoundingBox`).
public struct NamedFace: Sendable, Equatable {
    public let faceID: Int64
    public let box: BoundingBox
    public let name: String

    public init(faceID: Int64, box: BoundingBox, name: String) {
        self.faceID = faceID
        self.box = box
        self.name = name
    }
}

/// One MWG face region as `xmp write` writes it: the name, and the box as its centre and size, each a fraction
/// (0...1, six decimals) of the photo as displayed (MWG `stArea`, unit `normalized`).
public struct FaceRegion: Sendable, Equatable {
    public let faceID: Int64
    public let name: String
    public let x: Double
    public let y: Double
    public let w: Double
    public let h: Double

    public init(faceID: Int64, name: String, x: Double, y: Double, w: Double, h: Double) {
        self.faceID = faceID
        self.name = name
        self.x = x
        self.y = y
        self.w = w
        self.h = h
    }

    /// A fraction as the sidecar spells it: fixed-point, at most six decimals, no trailing zeros ("0.5", "0.123457").
    public static func text(_ fraction: Double) -> String {
        var text = String(format: "%.6f", fraction)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}

/// What one photo's sidecar says about its named faces: the displayed size (MWG `AppliedToDimensions`), one region
/// per face, and the names, each once, for the keywords.
///
/// The convention is the one digiKam, Lightroom, Picasa, exiftool and exiv2 share: regions are relative to the photo
/// as displayed, its EXIF orientation applied. photo-sorter's boxes are in that frame turned by the photo's
/// `quarter_turns` (a sideways scan it turned upright itself), so those turns are undone first.
public struct SidecarFaces: Sendable, Equatable {
    /// Displayed width and height in pixels.
    public let width: Int
    public let height: Int
    /// In the order of `faces`.
    public let regions: [FaceRegion]
    /// Each name once, in order of first appearance.
    public let names: [String]

    /// `frameWidth` × `frameHeight`: the photo's stored size (of its turned frame); `faces` in that frame.
    public init(frameWidth: Int, frameHeight: Int, quarterTurns: Int, faces: [NamedFace]) {
        let turns = QuarterTurns.normalised(quarterTurns)
        (width, height) = turns % 2 == 0 ? (frameWidth, frameHeight) : (frameHeight, frameWidth)
        let (width, height) = (Double(width), Double(height))
        regions = faces.map { face in
            let box = QuarterTurns.undo(face.box, frameWidth: frameWidth, frameHeight: frameHeight, turns: turns)
            let (x1, x2) = (Self.clamped(Double(box.x1) / width), Self.clamped(Double(box.x2) / width))
            let (y1, y2) = (Self.clamped(Double(box.y1) / height), Self.clamped(Double(box.y2) / height))
            return FaceRegion(faceID: face.faceID, name: face.name, x: Self.rounded((x1 + x2) / 2), y: Self.rounded((y1 + y2) / 2),
                              w: Self.rounded(x2 - x1), h: Self.rounded(y2 - y1))
        }
        var seen = Set<String>()
        names = faces.map(\.name).filter { seen.insert($0).inserted }
    }

    /// A box the detector let run past an edge is cut at it.
    private static func clamped(_ fraction: Double) -> Double { min(1, max(0, fraction)) }

    /// To the six decimals written, so what a reader gets back equals `regions` exactly.
    private static func rounded(_ fraction: Double) -> Double { (fraction * 1_000_000).rounded() / 1_000_000 }
}

/// photo-sorter's own quarter turns of a photo (`photos.quarter_turns`): counter-clockwise, 0...3, applied after the
/// EXIF orientation.
public enum QuarterTurns {
    public static func normalised(_ turns: Int) -> Int { ((turns % 4) + 4) % 4 }

    /// `box` of a frame of `frameWidth` × `frameHeight` that was turned counter-clockwise `turns` times, in the frame
    /// before those turns (the photo as displayed): the box turned clockwise as often.
    public static func undo(_ box: BoundingBox, frameWidth: Int, frameHeight: Int, turns: Int) -> BoundingBox {
        var box = box, (width, height) = (frameWidth, frameHeight)
        for _ in 0..<normalised(turns) {
            // One clockwise turn of a width × height frame: (x, y) → (height - y, x); the frame becomes height × width.
            box = BoundingBox(x1: height - box.y2, y1: box.x1, x2: height - box.y1, y2: box.x2)
            (width, height) = (height, width)
        }
        return box
    }
}

/// The keywords that carry a person's name for other tools, and which of them photo-sorter may remove again.
///
/// A name goes into `dc:subject` as itself, into `lr:hierarchicalSubject` as `People|Name` (Lightroom) and into
/// `digiKam:TagsList` as `People/Name`, each only where absent. The names photo-sorter added are recorded
/// (`photosorter:Keywords`): a later write removes the keywords of a recorded name that is no longer wanted (a person
/// renamed), and never a keyword of a name it did not record. A name is recorded only when none of its three
/// keywords was there before: a name the user already had as a keyword stays the user's.
public struct PeopleKeywords: Sendable, Equatable {
    public var subject: [String]
    public var hierarchical: [String]
    public var tags: [String]
    public var recorded: [String]

    public init(subject: [String], hierarchical: [String], tags: [String], recorded: [String]) {
        self.subject = subject
        self.hierarchical = hierarchical
        self.tags = tags
        self.recorded = recorded
    }

    public static func hierarchical(_ name: String) -> String { "People|" + name }
    public static func tag(_ name: String) -> String { "People/" + name }

    /// What the keywords become for `names`: stale recorded names' keywords removed, the missing ones appended
    /// (everything else kept in its order).
    public func updated(for names: [String]) -> PeopleKeywords {
        let wanted = Set(names)
        let stale = Set(recorded).subtracting(wanted)
        let staleHierarchical = Set(stale.map(Self.hierarchical)), staleTags = Set(stale.map(Self.tag))
        var next = PeopleKeywords(
            subject: subject.filter { !stale.contains($0) },
            hierarchical: hierarchical.filter { !staleHierarchical.contains($0) },
            tags: tags.filter { !staleTags.contains($0) },
            recorded: recorded.filter(wanted.contains))
        for name in names {
            let had = [next.subject.contains(name), next.hierarchical.contains(Self.hierarchical(name)), next.tags.contains(Self.tag(name))]
            if !had[0] { next.subject.append(name) }
            if !had[1] { next.hierarchical.append(Self.hierarchical(name)) }
            if !had[2] { next.tags.append(Self.tag(name)) }
            if !had.contains(true) && !next.recorded.contains(name) { next.recorded.append(name) }
        }
        return next
    }
}

/// Which sidecar file a photo's XMP goes to.
public enum SidecarNaming: String, Sendable, Codable, CaseIterable {
    /// `photo.jpg.xmp` (digiKam, darktable): the default.
    case ext
    /// `photo.xmp` (Lightroom).
    case basename

    /// The sidecar of the photo at `photoPath`: the first that exists of those the reader looks for
    /// (`XMPSidecar.candidates`: `photo.jpg.xmp`, `photo.xmp`, `photo.XMP`), else the one this naming creates.
    public func sidecar(of photoPath: String, exists: (String) -> Bool) -> String {
        let slash = photoPath.lastIndex(of: "/").map { photoPath.index(after: $0) } ?? photoPath.startIndex
        let folder = String(photoPath[..<slash])
        let candidates = XMPSidecar.candidates(forPhotoNamed: String(photoPath[slash...])).map { folder + $0 }
        if let existing = candidates.first(where: exists) { return existing }
        return self == .ext ? photoPath + ".xmp" : candidates[candidates.count - 2]
    }
}
