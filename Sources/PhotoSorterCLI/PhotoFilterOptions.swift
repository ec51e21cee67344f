import ArgumentParser
import PhotoSorterCore
import PhotoSorterServer

extension PhotoQuery.Match: ExpressibleByArgument {}
extension PhotoQuery.Order: ExpressibleByArgument {}

/// Which photos, as `photo-sorter photos` and `photo-sorter export` take them: people by name or id, and dates.
struct PhotoFilterOptions: ParsableArguments {
    @Option(name: .customLong("with"), help: "A person in the photo, by name or id (repeat for several).")
    var persons: [String] = []

    @Option(help: "all: every --with person is in the photo; any: at least one is.")
    var match: PhotoQuery.Match = .all

    @Option(help: "First day taken, YYYY-MM-DD (included).")
    var from: String?

    @Option(help: "Last day taken, YYYY-MM-DD (included).")
    var to: String?

    @Option(help: "Taken in this year (instead of --from/--to).")
    var year: Int?

    /// Nothing asked: every photo.
    var isEmpty: Bool { persons.isEmpty && from == nil && to == nil && year == nil }

    func validate() throws {
        if year != nil && (from != nil || to != nil) { throw ValidationError("give --year or --from/--to, not both") }
        if let year, !(1...9999).contains(year) { throw ValidationError("--year must be 1...9999") }
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, CalendarDay(value) == nil { throw ValidationError("\(name) must be a date YYYY-MM-DD, got \(value)") }
        }
    }

    /// The query, with `--with` names resolved to persons of the library.
    func query(on services: PhotoSorterServices) async throws -> PhotoQuery {
        var query = PhotoQuery(persons: try await services.people.resolvePersons(persons), match: match)
        if let year {
            query.from = CalendarDay(String(format: "%04d-01-01", year))
            query.to = CalendarDay(String(format: "%04d-12-31", year))
        } else {
            query.from = from.flatMap { CalendarDay($0) }
            query.to = to.flatMap { CalendarDay($0) }
        }
        return query
    }
}

/// `photo-sorter photos ...`: finds photos by people and date, and who is in a folder of photos, in process on the
/// database with the HTTP API's rules and JSON (GET /photos, GET /photos/people).
struct PhotosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "photos",
        abstract: "Find photos by people and date (photos find), or who is in a folder of photos (photos people).",
        subcommands: [Find.self, People.self],
        defaultSubcommand: Find.self)

    /// GET /photos.
    struct Find: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Photos showing people (--with, all or any of them) taken in a period; one page of JSON ({photos, next_after}).")

        @OptionGroup var filter: PhotoFilterOptions

        @Option(help: "id (as added), taken (oldest first) or taken_desc (newest first).")
        var order: PhotoQuery.Order = .taken

        @Option(help: "Continue after this position (the next_after of the previous page).")
        var after: String?

        @Option var limit = 100

        @OptionGroup var options: ConfigOptions

        func validate() throws {
            guard (1...PhotoQuery.maxLimit).contains(limit) else { throw ValidationError("--limit must be 1...\(PhotoQuery.maxLimit)") }
            if let after, PhotoCursor(after) == nil { throw ValidationError("--after must be a next_after of an earlier page") }
        }

        func run() async throws {
            try await InProcessService.printJSON(options) { services in
                var query = try await filter.query(on: services)
                query.order = order
                query.after = after.flatMap(PhotoCursor.init)
                query.limit = limit
                return try await services.people.findPhotos(query)
            }
        }
    }

    /// GET /photos/people?folder=.
    struct People: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Who is in the photos below a folder (\"everyone at that party\"), most photos first.")

        @Argument(help: "A folder of the library.")
        var folder: String

        @OptionGroup var options: ConfigOptions

        func run() async throws {
            try await InProcessService.printJSON(options) { try await $0.people(inFolder: folder) }
        }
    }
}
