/// The Unicode properties the pre-tokenizers' patterns test, as bits of one byte.
///
/// tiktoken's patterns use `\p{L}`, `\p{N}`, `\s` (White_Space), and for o200k the classes
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]` ("upper") and `[\p{Ll}\p{Lm}\p{Lo}\p{M}]` ("lower").
enum ScalarClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4
    /// `\r` or `\n`.
    static let newline: UInt8 = 8
    static let upper: UInt8 = 16
    static let lower: UInt8 = 32
    /// Past the end of the text: matches no class, and is not "anything else" either.
    static let end: UInt8 = 128

    /// The class of a scalar from its general category and White_Space property.
    static func compute(_ value: UInt32) -> UInt8 {
        guard let scalar = Unicode.Scalar(value) else { return 0 }
        var bits: UInt8 = scalar.properties.isWhitespace ? space : 0
        if value == 0x0A || value == 0x0D { bits |= newline }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .titlecaseLetter: bits |= letter | upper
        case .lowercaseLetter: bits |= letter | lower
        case .modifierLetter, .otherLetter: bits |= letter | upper | lower
        case .nonspacingMark, .spacingMark, .enclosingMark: bits |= upper | lower
        case .decimalNumber, .letterNumber, .otherNumber: bits |= number
        default: break
        }
        return bits
    }
}

/// Classes of every scalar below U+30000 (the BMP and the two planes of emoji and CJK
/// extensions), built once; scalars above are classified on the fly.
final class ScalarClassTable: @unchecked Sendable {
    static let shared = ScalarClassTable()
    static let tableSize = 0x30000

    /// Immutable after `init`, never freed (one per process).
    let classes: UnsafeMutablePointer<UInt8>

    private init() {
        classes = .allocate(capacity: Self.tableSize)
        for value in 0..<UInt32(Self.tableSize) { classes[Int(value)] = ScalarClass.compute(value) }
    }
}
