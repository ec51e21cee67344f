import PhotoSorterCore
import SQLKit

extension BoundingBox {
    /// The face box of a row with `bbox_x1` … `bbox_y2` columns (`embeddings`, `reprocess_faces`).
    init(row: any SQLRow) throws {
        self.init(x1: try row.decode(column: "bbox_x1", as: Int.self), y1: try row.decode(column: "bbox_y1", as: Int.self),
                  x2: try row.decode(column: "bbox_x2", as: Int.self), y2: try row.decode(column: "bbox_y2", as: Int.self))
    }
}
