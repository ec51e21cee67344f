import CExempi
import Foundation

/// What exempi refused, with exempi's error code (`exempi/xmperrors.h`).
enum XMPError: Error, Equatable, CustomStringConvertible {
    /// exempi did not start (`xmp_init`).
    case unavailable
    /// The text is not an XMP packet (not XML, not RDF, a structure XMP cannot hold).
    case unparsable(code: Int32)
    /// Setting, appending or deleting `path` failed.
    case refused(operation: String, path: String, code: Int32)
    case unserialisable(code: Int32)

    var description: String {
        switch self {
        case .unavailable: "the XMP toolkit (exempi) did not start"
        case .unparsable(let code): "not a valid XMP packet (\(Self.name(code)))"
        case .refused(let operation, let path, let code): "cannot \(operation) \(path) (\(Self.name(code)))"
        case .unserialisable(let code): "cannot serialise the XMP packet (\(Self.name(code)))"
        }
    }

    private static func name(_ code: Int32) -> String {
        let names: [Int32: String] = [-3: "bad object", -4: "bad parameter", -5: "bad value", -102: "bad path", -103: "bad options",
                                      -104: "bad index", -106: "bad parse", -107: "bad serialise", -201: "bad XML", -202: "bad RDF",
                                      -203: "bad XMP", -205: "bad Unicode"]
        return "\(names[code] ?? "exempi error") \(code)"
    }
}

/// The namespaces `xmp write` writes, registered with exempi under these prefixes once per process.
enum XMPNamespace {
    static let regions = "http://www.metadataworkinggroup.com/schemas/regions/"
    static let dimensions = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"
    static let area = "http://ns.adobe.com/xmp/sType/Area#"
    static let dublinCore = "http://purl.org/dc/elements/1.1/"
    static let lightroom = "http://ns.adobe.com/lightroom/1.0/"
    static let digiKam = "http://www.digikam.org/ns/1.0/"
    /// photo-sorter's own: marks the regions and keywords it wrote. A URN, so no host name is implied.
    static let photoSorter = "urn:photo-sorter:xmp:1.0/"

    static let prefixes = [(regions, "mwg-rs"), (dimensions, "stDim"), (area, "stArea"), (dublinCore, "dc"), (lightroom, "lr"),
                           (digiKam, "digiKam"), (photoSorter, "photosorter")]
}

/// One XMP packet in memory: exempi's `XmpPtr`, edited through property paths such as
/// `mwg-rs:Regions/mwg-rs:RegionList[2]/mwg-rs:Name` (the XMP Toolkit's path syntax; each top-level property in the
/// namespace `ns`). Not shared between threads.
final class XMPPacket {
    private let pointer: OpaquePointer

    /// exempi is started once for the process and never terminated: services come and go in one process (tests, the
    /// CLI), and `xmp_terminate` under a packet in use elsewhere would pull the toolkit from under it.
    private static let started: Bool = {
        guard xmp_init() else { return false }
        let prefix = xmp_string_new()
        defer { xmp_string_free(prefix) }
        return XMPNamespace.prefixes.allSatisfy { xmp_register_namespace($0.0, $0.1, prefix) }
    }()

    /// An empty packet.
    init() throws(XMPError) {
        guard Self.started, let pointer = xmp_new_empty() else { throw .unavailable }
        self.pointer = pointer
    }

    /// The packet `text` holds (a sidecar's content).
    convenience init(parsing text: Data) throws(XMPError) {
        try self.init()
        let parsed = text.withUnsafeBytes { xmp_parse(pointer, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        guard parsed else { throw .unparsable(code: xmp_get_error()) }
    }

    deinit { xmp_free(pointer) }

    func exists(_ ns: String, _ path: String) -> Bool { xmp_has_property(pointer, ns, path) }

    func set(_ ns: String, _ path: String, _ value: String) throws(XMPError) {
        guard xmp_set_property(pointer, ns, path, value, 0) else { throw .refused(operation: "set", path: path, code: xmp_get_error()) }
    }

    func delete(_ ns: String, _ path: String) {
        xmp_delete_property(pointer, ns, path)
    }

    /// Appends an empty struct to the unordered array (Bag) at `path`, creating the array when absent.
    func appendStruct(_ ns: String, toBag path: String) throws(XMPError) {
        guard xmp_append_array_item(pointer, ns, path, UInt32(XMP_PROP_VALUE_IS_ARRAY.rawValue), nil, UInt32(XMP_PROP_VALUE_IS_STRUCT.rawValue)) else {
            throw .refused(operation: "append to", path: path, code: xmp_get_error())
        }
    }

    /// Appends `value` to the array at `path` (a Bag, or a Seq when `ordered`), creating the array when absent.
    func append(_ ns: String, to path: String, _ value: String, ordered: Bool) throws(XMPError) {
        let form = ordered ? XMP_PROP_ARRAY_IS_ORDERED.rawValue : XMP_PROP_VALUE_IS_ARRAY.rawValue
        guard xmp_append_array_item(pointer, ns, path, UInt32(form), value, 0) else {
            throw .refused(operation: "append to", path: path, code: xmp_get_error())
        }
    }

    /// How many items the array at `path` holds (0 when absent).
    func count(_ ns: String, _ path: String) -> Int {
        var count = 0
        while exists(ns, "\(path)[\(count + 1)]") { count += 1 }
        return count
    }

    /// The text of each item of the array at `path`, in order (empty when absent).
    func items(_ ns: String, _ path: String) -> [String] {
        let value = xmp_string_new()
        defer { xmp_string_free(value) }
        var items: [String] = []
        while xmp_get_array_item(pointer, ns, path, Int32(items.count + 1), value, nil) {
            items.append(String(cString: xmp_string_cstr(value)))
        }
        return items
    }

    /// The packet as a sidecar holds it: UTF-8, without the `<?xpacket?>` wrapper and its padding.
    func serialised() throws(XMPError) -> Data {
        let text = xmp_string_new()
        defer { xmp_string_free(text) }
        guard xmp_serialize(pointer, text, UInt32(XMP_SERIAL_OMITPACKETWRAPPER), 0) else {
            throw .unserialisable(code: xmp_get_error())
        }
        return Data(bytes: xmp_string_cstr(text), count: xmp_string_len(text))
    }
}
