/// An age as people write it on a command line: a number and a unit, `30d`, `12h`, `90m`, `45s`, `2w`
/// (`0` alone means none).
public enum AgeText {
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case invalid(String)

        public var description: String {
            switch self {
            case .invalid(let text): "not an age: \"\(text)\" (write a number and a unit: 30d, 12h, 90m, 45s, 2w)"
            }
        }
    }

    private static let unitSeconds: [Character: Double] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800]

    /// Seconds in `text`.
    public static func seconds(_ text: String) throws(ParseError) -> Double {
        if text == "0" { return 0 }
        guard let unit = text.last, let seconds = unitSeconds[unit], let count = Double(text.dropLast()), count >= 0, count.isFinite else {
            throw .invalid(text)
        }
        return count * seconds
    }
}
