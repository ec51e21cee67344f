import Crypto
import Vapor

/// POST /callback/photo-processed: the ML service's results, the authoritative write path.
struct CallbackController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post("callback", "photo-processed", use: photoProcessed)
    }

    func photoProcessed(req: Request) async throws -> CallbackResponse {
        try req.requireSecret()
        let payload = try req.content.decode(CallbackPayload.self)
        // Without a callback_id, the same body twice is the same callback.
        let key = payload.callbackID.map { "id:\($0)" }
            ?? "p\(payload.photoID)-sha256:" + SHA256.hash(data: Data(buffer: req.body.data ?? ByteBuffer())).hex
        let response = try await req.photoSorter.identity.commit(payload, key: key)
        req.photoSorter.dispatcher.finished(payload.photoID)
        if payload.detections.contains(where: { $0.xmpName != nil }) { await req.photoSorter.xmpNames.wake() }
        return response
    }
}
