/// A rank file that cannot be used: missing, corrupt, or not the file tiktoken pins.
public struct TokenizerError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        /// No rank file was found for the encoding.
        case missing
        /// A file was found but its SHA-256 is not the pinned one.
        case hashMismatch = "hash_mismatch"
        /// The file's contents are not a tiktoken rank file.
        case malformed
        /// Reading or writing a file failed.
        case io
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
