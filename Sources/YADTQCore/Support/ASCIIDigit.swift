extension Character {
    /// `0` to `9` only: `Character.isNumber` takes other scripts' digits and fractions, and
    /// `Int("+5")` a sign, where settings, hosts and cursors are plain decimal numbers.
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
