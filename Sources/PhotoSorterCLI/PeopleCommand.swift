import ArgumentParser
import PhotoSorterCore
import PhotoSorterServer

extension PersonListQuery.Hidden: ExpressibleByArgument {}

/// `photo-sorter people ...`: lists persons and corrects them, in process on the database, with the rules and
/// the JSON of the HTTP API (`PeopleService`). Each answer is printed on standard output; a refused request
/// prints `{"error": true, "reason": ..., "status": ...}` on standard error and exits with code 2.
struct PeopleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "people",
        abstract: "List persons and correct them: rename, hide, merge, move faces, \"not this person\", confirm, review.",
        subcommands: [List.self, Show.self, Rename.self, Hide.self, Unhide.self, Merge.self, Move.self, Reject.self, Confirm.self,
                      Review.self])

    /// GET /persons.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List persons, most photos first: those with 2 or more photos and named ones (--all: everyone).")

        @Option(help: "Only persons whose name contains this (case-insensitive).")
        var name: String?

        @Option(help: "false: not hidden ones; true: only hidden ones; any: both.")
        var hidden: PersonListQuery.Hidden = .false

        @Flag(help: "Only persons without a name.")
        var unnamed = false

        @Option(help: "Only persons with at least this many photos (default 2); named persons are always listed.")
        var minPhotos: Int?

        @Flag(help: "Everyone, one-photo persons included (--min-photos 1).")
        var all = false

        @Option var offset = 0

        @Option(help: "Start after this person: the next_after of an earlier page (instead of --offset).")
        var after: String?

        @Option var limit = 50

        @OptionGroup var options: ConfigOptions

        func validate() throws {
            guard !(all && minPhotos != nil) else { throw ValidationError("give --all or --min-photos, not both") }
            if let after, PersonCursor(after) == nil { throw ValidationError("--after must be a next_after of an earlier page, got \(after)") }
            if let minPhotos, minPhotos < 1 { throw ValidationError("--min-photos must be at least 1 (--all lists everyone)") }
        }

        func run() async throws {
            var query = PersonListQuery()
            query.name = name
            query.hidden = hidden
            query.unnamedOnly = unnamed
            query.minPhotos = all ? 1 : minPhotos ?? query.minPhotos
            query.offset = offset
            query.after = after.flatMap(PersonCursor.init)
            query.limit = limit
            try await InProcessService.printJSON(options) { try await $0.people.list(query) }
        }
    }

    /// GET /person/{id} with the first pages of GET /person/{id}/faces and /photos.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a person with its faces and photos: {person, faces, photos} (a merged id shows the survivor).")

        @Argument(help: .init(valueName: "person-id")) var personID: Int64

        @Option(help: "At most this many faces and this many photos.")
        var limit = 100

        @OptionGroup var options: ConfigOptions

        func run() async throws {
            try await InProcessService.printJSON(options) { services in
                PersonDetails(person: try await services.people.person(personID),
                              faces: try await services.people.faces(of: personID, limit: limit),
                              photos: try await services.people.photos(of: personID, query: PhotoQuery(limit: limit)))
            }
        }
    }

    /// PATCH /person/{id} `{"display_name": ...}`.
    struct Rename: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Name a person, or clear its name with --clear.")

        @Argument(help: .init(valueName: "person-id")) var personID: Int64

        @Argument var name: String?

        @Flag(help: "Remove the name instead.")
        var clear = false

        @OptionGroup var options: ConfigOptions

        func validate() throws {
            guard (name != nil) != clear else { throw ValidationError("give either a NAME or --clear") }
        }

        func run() async throws {
            try await InProcessService.printJSON(options) {
                try await $0.people.update(personID, PersonUpdate(displayName: .some(clear ? nil : name)))
            }
        }
    }

    /// PATCH /person/{id} `{"hidden": true}`.
    struct Hide: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hide a person from lists, the review queue and export.")

        @Argument(help: .init(valueName: "person-id")) var personID: Int64

        @OptionGroup var options: ConfigOptions

        func run() async throws {
            try await InProcessService.printJSON(options) { try await $0.people.update(personID, PersonUpdate(hidden: true)) }
        }
    }

    /// PATCH /person/{id} `{"hidden": false}`.
    struct Unhide: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a hidden person again.")

        @Argument(help: .init(valueName: "person-id")) var personID: Int64

        @OptionGroup var options: ConfigOptions

        func run() async throws {
            try await InProcessService.printJSON(options) { try await $0.people.update(personID, PersonUpdate(hidden: false)) }
        }
    }

    /// POST /persons/merge.
    struct Merge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge persons into one: --into, else the oldest id. The others stay as redirects to it.")

        @Argument(help: .init("The persons to merge.", valueName: "person-id")) var personIDs: [Int64]

        @Option(help: .init("The person that remains (it may be left out of the list).", valueName: "person-id"))
        var into: Int64?

        @OptionGroup var options: ConfigOptions

        func run() async throws {
            try await InProcessService.printJSON(options) {
                try await $0.people.merge(MergeRequest(personIDs: personIDs, into: into))
            }
        }
    }

    /// POST /faces/move.
    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move faces to a person (--to) or to a new one (--new, a split); they stay there.")

        @Argument(help: .init("The faces to move.", valueName: "face-id")) var faceIDs: [Int64]

        @Option(help: .init("The person to move the faces to.", valueName: "person-id"))
        var to: Int64?

        @Flag(help: "Move the faces to a new person.")
        var new = false

        @OptionGroup var options: ConfigOptions

        func validate() throws {
            guard (to != nil) != new else { throw ValidationError("give exactly one of --to PERSON_ID and --new") }
        }

        func run() async throws {
            try await InProcessService.printJSON(options) {
                try await $0.people.move(MoveRequest(faceIDs: faceIDs, toPersonID: to))
            }
        }
    }

    /// POST /faces/{id}/reject, with `{"person_id": ...}` for --person.
    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "\"Not this person\": the face leaves its person for good and goes where it fits best without it.")

        @Argument(help: .init(valueName: "face-id")) var faceID: Int64

        @Option(help: .init("Another person the face is not (its runner-up): only recorded, the face stays where it is.",
                            valueName: "person-id"))
        var person: Int64?

        @OptionGroup var options: ConfigOptions

        func run() async throws {
            try await InProcessService.printJSON(options) { try await $0.people.reject(face: faceID, person: person) }
        }
    }

    /// POST /faces/{id}/confirm.
    struct Confirm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Confirm that a face is its person: it never moves by itself again.")

        @Argument(help: .init(valueName: "face-id")) var faceID: Int64

        @OptionGroup var options: ConfigOptions

        func run() async throws {
            try await InProcessService.printJSON(options) { try await $0.people.confirm(face: faceID) }
        }
    }

    /// GET /review.
    struct Review: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The least certain decisions first, each with its question: same_person (yes: confirm, no: reject) "
                + "or runner_up (yes: move --to the runner-up, no: reject --person the runner-up).")

        @Option var limit = 20

        @OptionGroup var options: ConfigOptions

        func run() async throws {
            try await InProcessService.printJSON(options) { try await $0.people.review(limit: limit) }
        }
    }
}

/// What `people show` prints: the person and the first pages of its faces and photos, as the API pages them.
private struct PersonDetails: Encodable {
    let person: PersonView
    let faces: FacePage
    let photos: PhotoPage
}
