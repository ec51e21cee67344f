import Foundation

/// When a photo was taken, as the camera's clock showed it: the wall-clock time where it was taken (what people
/// mean by "Ann in 2019"), with the UTC offset when the photo records one. Dates compare and sort on the wall-clock
/// text `local` (`YYYY-MM-DDTHH:MM:SS` sorts as it reads), which is how the database stores and indexes them.
public struct TakenDate: Codable, Sendable, Equatable {
    /// Where the date came from, best first.
    public enum Source: String, Codable, Sendable, CaseIterable {
        /// EXIF `DateTimeOriginal` (else `DateTimeDigitized`) of the photo.
        case exif
        /// XMP `photoshop:DateCreated` (else `xmp:CreateDate`) embedded in the photo.
        case xmp
        /// The file's modification time, in this machine's time zone: the photo carries no date.
        case mtime
    }

    /// `YYYY-MM-DDTHH:MM:SS`, no offset, no fraction.
    public let local: String
    /// `+HH:MM` / `-HH:MM`, when known.
    public let offset: String?
    public let source: Source

    /// Validates the fields: a malformed date is refused, never stored.
    public init(local: String, offset: String?, source: Source) throws(TakenDateError) {
        guard Self.isWallClock(local) else { throw .malformed("taken local time must be YYYY-MM-DDTHH:MM:SS, got \(local)") }
        if let offset, !Self.isOffset(offset) { throw .malformed("taken offset must be +HH:MM or -HH:MM, got \(offset)") }
        self.local = local
        self.offset = offset
        self.source = source
    }

    /// The date of a file that carries none: its modification time (`modifiedAtMs`, ms since 1970) as the wall clock
    /// of `timeZone` then, with that zone's offset.
    public static func fileTime(modifiedAtMs: Int64, timeZone: TimeZone = .current) -> TakenDate {
        let date = Date(timeIntervalSince1970: Double(modifiedAtMs) / 1000)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let local = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
        let seconds = timeZone.secondsFromGMT(for: date)
        let offset = String(format: "%@%02d:%02d", seconds < 0 ? "-" : "+", abs(seconds) / 3600, abs(seconds) % 3600 / 60)
        // Built from a formatter of known shape: valid by construction.
        return TakenDate(checkedLocal: local, offset: offset, source: .mtime)
    }

    private init(checkedLocal: String, offset: String?, source: Source) {
        self.local = checkedLocal
        self.offset = offset
        self.source = source
    }

    /// ISO 8601 as the API shows it: the wall clock, with the offset when known.
    public var iso8601: String { local + (offset ?? "") }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let local = try c.decode(String.self, forKey: .local)
        let offset = try c.decodeIfPresent(String.self, forKey: .offset)
        let source = try c.decode(Source.self, forKey: .source)
        do {
            try self.init(local: local, offset: offset, source: source)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .local, in: c, debugDescription: error.description)
        }
    }

    enum CodingKeys: String, CodingKey { case local, offset, source }

    /// `YYYY-MM-DDTHH:MM:SS` naming a real calendar moment (month 1–12, day within the month, 24-hour clock).
    static func isWallClock(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":") else { return false }
        guard let date = CalendarDay(text.prefix(10)),
              let hour = Int(text.dropFirst(11).prefix(2)), let minute = Int(text.dropFirst(14).prefix(2)),
              let second = Int(text.dropFirst(17).prefix(2)) else { return false }
        return date.year >= 1 && (0...23).contains(hour) && (0...59).contains(minute) && (0...59).contains(second)
    }

    static func isOffset(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 6, bytes[0] == UInt8(ascii: "+") || bytes[0] == UInt8(ascii: "-"), bytes[3] == UInt8(ascii: ":"),
              let hours = Int(text.dropFirst(1).prefix(2)), let minutes = Int(text.suffix(2)) else { return false }
        return (0...14).contains(hours) && (0...59).contains(minutes)
    }
}

/// A taken date that cannot be stored.
public enum TakenDateError: Error, CustomStringConvertible, Equatable {
    case malformed(String)

    public var description: String {
        switch self {
        case .malformed(let reason): reason
        }
    }
}

/// A calendar day `YYYY-MM-DD`, as queries name the ends of a date range ("from 2019-01-01 to 2019-12-31").
public struct CalendarDay: Sendable, Equatable, Comparable, CustomStringConvertible {
    public let year: Int
    public let month: Int
    public let day: Int

    /// Nil unless `text` is `YYYY-MM-DD` naming a day that exists (2019-02-29 does not).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.utf8.count == 10, parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              (1...12).contains(month), (1...Self.days(inMonth: month, of: year)).contains(day) else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    public var description: String { String(format: "%04d-%02d-%02d", year, month, day) }

    public static func < (lhs: CalendarDay, rhs: CalendarDay) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    static func days(inMonth month: Int, of year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}
