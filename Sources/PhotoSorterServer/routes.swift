import Vapor

/// Every HTTP endpoint of the service, by controller.
func routes(_ app: Application, webAssets: WebAssets) throws {
    try app.register(collection: IngestController())
    try app.register(collection: PhotoController())
    try app.register(collection: CallbackController())
    try app.register(collection: PersonDumpController())
    try app.register(collection: PeopleController())
    try app.register(collection: ReclusterController())
    try app.register(collection: ReprocessController())
    try app.register(collection: XMPController())
    try app.register(collection: HealthController())
    try app.register(collection: WatchController())
    try app.register(collection: XMPNamesController())
    try app.register(collection: MediaController())
    try app.register(collection: WebController(assets: webAssets))
    try app.register(collection: try OpenAPIController.load())
}
