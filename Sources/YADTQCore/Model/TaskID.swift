import Foundation

/// Ids for tasks that do not name their own: random (version 4) UUIDs in lowercase.
///
/// A whole batch draws its randomness with one read of /dev/urandom. Foundation's `UUID()`
/// opens, reads and closes it and formats with `sprintf` once per id, which was a quarter
/// of `yadtq-run`'s CPU.
public enum TaskID {
    public static func random(count: Int) -> [String] {
        guard count > 0 else { return [] }
        var entropy = [UInt8](repeating: 0, count: count * 16)
        entropy.withUnsafeMutableBytes { fill($0) }
        return (0..<count).map { index in
            String(unsafeUninitializedCapacity: 36) { text in
                var written = 0
                for byteIndex in 0..<16 {
                    var byte = entropy[index * 16 + byteIndex]
                    if byteIndex == 6 { byte = byte & 0x0f | 0x40 }  // version 4
                    if byteIndex == 8 { byte = byte & 0x3f | 0x80 }  // RFC 4122 variant
                    if byteIndex == 4 || byteIndex == 6 || byteIndex == 8 || byteIndex == 10 {
                        text[written] = UInt8(ascii: "-")
                        written += 1
                    }
                    text[written] = hexDigits[Int(byte >> 4)]
                    text[written + 1] = hexDigits[Int(byte & 0x0f)]
                    written += 2
                }
                return written
            }
        }
    }

    /// `declarations`, each that names no id given a new one. A producer that must be able to
    /// say which ids its tasks have before it knows whether they were queued (a submit whose
    /// Redis stops answering) names them first.
    public static func named(_ declarations: [TaskDeclaration]) -> [TaskDeclaration] {
        var newIDs = random(count: declarations.count { $0.id == nil })[...]
        return declarations.map { declaration in
            var named = declaration
            if named.id == nil { named.id = newIDs.popFirst() }
            return named
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Fills `buffer` from the kernel's random source, or, where /dev/urandom cannot be
    /// read, from the standard library's generator (one system call per 8 bytes).
    private static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var filled = 0
        let device = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        if device >= 0 {
            defer { close(device) }
            while filled < buffer.count {
                let got = read(device, buffer.baseAddress! + filled, buffer.count - filled)
                if got > 0 {
                    filled += got
                } else if got == 0 || errno != EINTR {
                    break
                }
            }
        }
        var generator = SystemRandomNumberGenerator()
        for offset in filled..<buffer.count { buffer[offset] = generator.next() }
    }
}
