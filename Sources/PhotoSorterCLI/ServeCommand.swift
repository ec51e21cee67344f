import ArgumentParser
import PhotoSorterServer
import Vapor

/// Runs the HTTP service with its workers and schedulers until SIGINT/SIGTERM.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the HTTP service, workers and schedulers.")

    @OptionGroup var options: ConfigOptions

    @ArgumentParser.Option(name: .customLong("watch"), parsing: .upToNextOption,
            help: "Folders to follow (watch mode; added to PHOTO_SORTER_WATCH_ROOTS): new, changed, moved and deleted photos are taken in within seconds.")
    var watchRoots: [String] = []

    func run() async throws {
        var config = try options.load()
        config.watchRoots += watchRoots
        let app = try await Application.make(Environment(name: "production", arguments: ["photo-sorter", "serve"]))
        do {
            try await configure(app, config: config)
            app.logger.notice("browse: \(config.browseURL)")
            try await app.execute()
        } catch {
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }
}

/// Creates or upgrades the schema and exits.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Create or upgrade the database schema.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let database = try await InProcessService.run(options) { $0.config.databaseURL }
        print("database ready: \(database)")
    }
}
