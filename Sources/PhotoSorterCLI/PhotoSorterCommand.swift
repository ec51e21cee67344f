import ArgumentParser
import PhotoSorterServer

/// `photo-sorter`: sort a folder end to end, correct the persons, re-cluster, export, write names to XMP sidecars, serve the API,
/// migrate the database.
@main
struct PhotoSorterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "photo-sorter",
        abstract: "Finds every face in a photo library and gives each person one stable id.",
        subcommands: [SortCommand.self, PeopleCommand.self, PhotosCommand.self, ReclusterCommand.self, ExportCommand.self, ReprocessCommand.self,
                      XMPCommand.self, ServeCommand.self, MigrateCommand.self, PruneCommand.self],
        defaultSubcommand: SortCommand.self)
}

/// Options shared by every subcommand; each overrides the file/environment configuration.
struct ConfigOptions: ParsableArguments {
    @Option(help: "Database: SQLite file path or postgres:// URL (default ./data/photo-sorter.sqlite).")
    var database: String?

    @Option(help: "HTTP port of the service (default 8080).")
    var port: Int?

    @Option(name: .customLong("ml-url"), help: "ML service base URL (default http://127.0.0.1:8001).")
    var mlURL: String?

    @Option(help: "Face model: arcface (default; non-commercial research weights) or dlib (CC0 weights). Default: the model the database already holds.")
    var model: String?

    func load() throws -> ServiceConfig {
        var config = try ServiceConfig.load()
        if let database { config.databaseURL = database }
        if let port { config.port = port }
        if let mlURL { config.mlServiceURLs = [mlURL] }
        if let model { config.model = model }
        try config.validate()
        return config
    }
}
