/// An error as YADTQ reports it: what happened, the underlying C library's own
/// code and message when there is one, and what the operator can do about it.
public struct YADTQError: Error, CustomStringConvertible, Sendable {
    /// The subsystem that failed, so callers can decide between retrying and giving up.
    public enum Area: String, Sendable {
        case configuration, kafka, redis, taskFile = "task file", plugin, io
    }

    public var area: Area
    /// What happened, in one sentence.
    public var message: String
    /// The C library's error code (`rd_kafka_resp_err_t`, hiredis `REDIS_ERR_*`), when there is one.
    public var libraryCode: Int32?
    /// The C library's own error text, verbatim.
    public var libraryMessage: String?
    /// What the operator should do next.
    public var remedy: String?

    public init(
        _ area: Area, _ message: String, libraryCode: Int32? = nil, libraryMessage: String? = nil,
        remedy: String? = nil
    ) {
        self.area = area
        self.message = message
        self.libraryCode = libraryCode
        self.libraryMessage = libraryMessage
        self.remedy = remedy
    }

    public var description: String {
        var text = "\(area.rawValue): \(message)"
        switch (libraryCode, libraryMessage) {
        case let (code?, libraryMessage?): text += " (\(libraryMessage), code \(code))"
        case let (nil, libraryMessage?): text += " (\(libraryMessage))"
        case let (code?, nil): text += " (code \(code))"
        case (nil, nil): break
        }
        if let remedy { text += ". \(remedy)" }
        return text
    }
}

extension String {
    /// Text from a NUL-terminated C buffer such as a librdkafka `errstr`.
    init(errorBuffer: [CChar]) {
        self.init(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
