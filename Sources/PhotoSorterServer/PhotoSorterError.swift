import Vapor

/// Every error the HTTP API reports. Each maps to a 4xx/5xx status with a reason the caller can act on;
/// Vapor's error middleware renders it as `{"error": true, "reason": "..."}`.
public enum PhotoSorterError: AbortError, Equatable {
    case folderNotFound(String)
    case notADirectory(String)
    case outsideAllowedRoots(String)
    case invalidRequest(String)
    /// A path given to analyse that is not a photo (content, file type, symlink, permissions), with the scanner's reason.
    case notAPhoto(path: String, reason: String)
    /// A query parameter out of range or malformed.
    case invalidQuery(String)
    case photoNotFound(Int64)
    case personNotFound(Int64)
    case faceNotFound(Int64)
    case jobNotFound(String)
    case unauthorized
    case mlServiceUnavailable(String)
    case mlServiceRejected(status: Int, reason: String)
    /// The request is valid but contradicts the database's state (another face model, a running reprocess, a
    /// correction that breaks a constraint).
    case conflict(String)
    case reprocessJobNotFound(String)
    case reclusterJobNotFound(String)
    case xmpWriteJobNotFound(String)
    /// A thumbnail or preview that does not exist and cannot be made (a person without faces, a render that
    /// returned nothing).
    case imageUnavailable(String)
    /// A browser write that did not come from the page itself (cross-site, a form, no `X-Photo-Sorter-Request`).
    case crossSiteWrite(String)
    case unsupportedMediaType(String)
    /// No or a wrong API token where one is required.
    case tokenRequired

    public var status: HTTPResponseStatus {
        switch self {
        case .folderNotFound, .photoNotFound, .personNotFound, .faceNotFound, .jobNotFound, .reprocessJobNotFound, .reclusterJobNotFound,
             .xmpWriteJobNotFound, .imageUnavailable: .notFound
        case .conflict: .conflict
        case .notADirectory, .invalidRequest: .unprocessableEntity
        case .notAPhoto, .invalidQuery: .badRequest
        case .outsideAllowedRoots, .crossSiteWrite: .forbidden
        case .unsupportedMediaType: .unsupportedMediaType
        case .unauthorized, .tokenRequired: .unauthorized
        case .mlServiceUnavailable: .serviceUnavailable
        case .mlServiceRejected: .badGateway
        }
    }

    public var reason: String {
        switch self {
        case .folderNotFound(let path): "folder not found: \(path)"
        case .notADirectory(let path): "not a directory: \(path)"
        case .outsideAllowedRoots(let path): "path is outside the allowed ingest roots: \(path)"
        case .invalidRequest(let why): why
        case .notAPhoto(let path, let why): "\(path): \(why)"
        case .invalidQuery(let why): why
        case .photoNotFound(let id): "no photo with id \(id)"
        case .personNotFound(let id): "no person with id \(id)"
        case .faceNotFound(let id): "no face with id \(id)"
        case .jobNotFound(let id): "no ingest job with id \(id)"
        case .unauthorized: "missing or wrong X-Photo-Sorter-Secret header"
        case .mlServiceUnavailable(let why): "ML service unavailable: \(why)"
        case .mlServiceRejected(let status, let why): "ML service answered \(status): \(why)"
        case .conflict(let why): why
        case .reprocessJobNotFound(let id): "no reprocess job with id \(id)"
        case .reclusterJobNotFound(let id): "no recluster job with id \(id)"
        case .xmpWriteJobNotFound(let id): "no xmp write job with id \(id) (jobs live in the instance that runs them, until it stops)"
        case .imageUnavailable(let why): why
        case .crossSiteWrite(let why): "write refused: \(why)"
        case .unsupportedMediaType(let why): why
        case .tokenRequired: "this service needs its API token (Authorization: Bearer …, or open the page once with ?token=…)"
        }
    }
}
