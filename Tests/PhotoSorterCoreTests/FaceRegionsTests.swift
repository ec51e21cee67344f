import PhotoSorterCore
import XCTest

/// What `xmp write` puts in a sidecar: regions relative to the photo as displayed (photo-sorter's own quarter turns
/// undone), the names as keywords it can take back after a rename, and which sidecar file it uses.
final class FaceRegionsTests: XCTestCase {
    /// A box on a 400 × 300 photo as displayed, and the same box after 1, 2 and 3 counter-clockwise quarter turns
    /// (numpy's `rot90(image, k)`, as the ML service turns a sideways scan).
    static let displayed = BoundingBox(x1: 10, y1: 20, x2: 50, y2: 80)
    static let turned: [(turns: Int, box: BoundingBox, width: Int, height: Int)] = [
        (0, displayed, 400, 300),
        (1, BoundingBox(x1: 20, y1: 350, x2: 80, y2: 390), 300, 400),
        (2, BoundingBox(x1: 350, y1: 220, x2: 390, y2: 280), 400, 300),
        (3, BoundingBox(x1: 220, y1: 10, x2: 280, y2: 50), 300, 400),
    ]

    func testUndoingEachNumberOfQuarterTurnsGivesTheDisplayedBox() {
        for (turns, box, width, height) in Self.turned {
            XCTAssertEqual(QuarterTurns.undo(box, frameWidth: width, frameHeight: height, turns: turns), Self.displayed, "\(turns) turns")
        }
    }

    /// Whatever the turns, the region is the face's place on the displayed 400 × 300 photo: centre and size as
    /// fractions, and `AppliedToDimensions` the displayed size.
    func testRegionIsTheCentreAndSizeOnTheDisplayedPhoto() {
        for (turns, box, width, height) in Self.turned {
            let faces = SidecarFaces(frameWidth: width, frameHeight: height, quarterTurns: turns,
                                     faces: [NamedFace(faceID: 7, box: box, name: "Ann")])
            XCTAssertEqual(faces.width, 400, "\(turns) turns")
            XCTAssertEqual(faces.height, 300, "\(turns) turns")
            XCTAssertEqual(faces.regions, [FaceRegion(faceID: 7, name: "Ann", x: 0.075, y: 0.166667, w: 0.1, h: 0.2)], "\(turns) turns")
        }
    }

    func testBoxPastAnEdgeIsCutAtIt() {
        let faces = SidecarFaces(frameWidth: 100, frameHeight: 100, quarterTurns: 0,
                                 faces: [NamedFace(faceID: 1, box: BoundingBox(x1: -20, y1: 90, x2: 20, y2: 130), name: "Ann")])
        XCTAssertEqual(faces.regions, [FaceRegion(faceID: 1, name: "Ann", x: 0.1, y: 0.95, w: 0.2, h: 0.1)])
    }

    func testEachNameIsListedOnceInOrderOfItsFirstFace() {
        let box = BoundingBox(x1: 0, y1: 0, x2: 10, y2: 10)
        let faces = SidecarFaces(frameWidth: 100, frameHeight: 100, quarterTurns: 0, faces: [
            NamedFace(faceID: 1, box: box, name: "Bob"), NamedFace(faceID: 2, box: box, name: "Ann"), NamedFace(faceID: 3, box: box, name: "Bob"),
        ])
        XCTAssertEqual(faces.names, ["Bob", "Ann"])
        XCTAssertEqual(faces.regions.map(\.faceID), [1, 2, 3], "one region per face, even with one name twice")
    }

    func testFractionsAreWrittenFixedPointWithoutTrailingZeros() {
        XCTAssertEqual(FaceRegion.text(0.5), "0.5")
        XCTAssertEqual(FaceRegion.text(0.166667), "0.166667")
        XCTAssertEqual(FaceRegion.text(0.000001), "0.000001")
        XCTAssertEqual(FaceRegion.text(1), "1")
        XCTAssertEqual(FaceRegion.text(0), "0")
    }

    func testKeywordsAreAddedOnceBesideTheUsersOwn() {
        let user = PeopleKeywords(subject: ["Holiday"], hierarchical: ["Places|Rome"], tags: ["Places/Rome"], recorded: [])
        let written = user.updated(for: ["Ann", "Bob"])
        XCTAssertEqual(written, PeopleKeywords(subject: ["Holiday", "Ann", "Bob"], hierarchical: ["Places|Rome", "People|Ann", "People|Bob"],
                                               tags: ["Places/Rome", "People/Ann", "People/Bob"], recorded: ["Ann", "Bob"]))
        XCTAssertEqual(written.updated(for: ["Ann", "Bob"]), written, "writing again changes nothing")
    }

    /// After a rename the old name's keywords go, because photo-sorter recorded that it added them; the user's stay.
    func testRenamedPersonsOldKeywordsAreRemoved() {
        let before = PeopleKeywords(subject: ["Holiday", "Ann"], hierarchical: ["People|Ann"], tags: ["People/Ann"], recorded: ["Ann"])
        XCTAssertEqual(before.updated(for: ["Ann Smith"]),
                       PeopleKeywords(subject: ["Holiday", "Ann Smith"], hierarchical: ["People|Ann Smith"], tags: ["People/Ann Smith"],
                                      recorded: ["Ann Smith"]))
        XCTAssertEqual(before.updated(for: []), PeopleKeywords(subject: ["Holiday"], hierarchical: [], tags: [], recorded: []))
    }

    /// A name the user already had as a keyword is not recorded, so it is never removed.
    func testNameTheUserAlreadyHadIsNeverRemoved() {
        let user = PeopleKeywords(subject: ["Bob"], hierarchical: [], tags: [], recorded: [])
        let written = user.updated(for: ["Bob"])
        XCTAssertEqual(written, PeopleKeywords(subject: ["Bob"], hierarchical: ["People|Bob"], tags: ["People/Bob"], recorded: []))
        XCTAssertEqual(written.updated(for: []), written)
    }

    func testSidecarIsTheExistingOneElseTheNamingsNewOne() {
        let photo = "/p/photo.jpg"
        XCTAssertEqual(SidecarNaming.ext.sidecar(of: photo) { _ in false }, "/p/photo.jpg.xmp")
        XCTAssertEqual(SidecarNaming.basename.sidecar(of: photo) { _ in false }, "/p/photo.xmp")
        XCTAssertEqual(SidecarNaming.basename.sidecar(of: photo) { $0 == "/p/photo.jpg.xmp" }, "/p/photo.jpg.xmp")
        XCTAssertEqual(SidecarNaming.ext.sidecar(of: photo) { $0 == "/p/photo.xmp" }, "/p/photo.xmp")
        XCTAssertEqual(SidecarNaming.ext.sidecar(of: photo) { _ in true }, "/p/photo.jpg.xmp", "photo.jpg.xmp first when both exist")
        XCTAssertEqual(SidecarNaming.basename.sidecar(of: "/p.d/photo") { _ in false }, "/p.d/photo.xmp", "a dot in a folder is no extension")
        XCTAssertEqual(SidecarNaming.basename.sidecar(of: "/p/.hidden") { _ in false }, "/p/.hidden.xmp")
        XCTAssertEqual(SidecarNaming.ext.sidecar(of: photo) { $0 == "/p/photo.XMP" }, "/p/photo.XMP", "the upper-case sidecar the reader reads too")
    }
}
