/// A long option's value read from the raw arguments, for the places that look at
/// them before (or instead of) argument-parser: `--socket` (``ServiceClientMode``),
/// `--store` when completing (``Completions``), and the quick lookups (``QuickLookup``).
enum ArgumentScan {
    /// What one argument is, for a long option.
    enum Match: Equatable {
        /// Not the option.
        case other
        /// `--name=VALUE`, or `--name VALUE`.
        case value(String)
        /// `--name` with no argument after it.
        case missingValue
    }

    /// `arguments[index]` read as the long option `name` (`--store`): `name=VALUE`, or
    /// `name` with the next argument as its value (`index` is then moved onto it).
    static func option(_ name: String, in arguments: [String], at index: inout Int) -> Match {
        let argument = arguments[index]
        if argument == name {
            guard index + 1 < arguments.count else { return .missingValue }
            index += 1
            return .value(arguments[index])
        }
        guard argument.hasPrefix(name + "=") else { return .other }
        return .value(String(argument.dropFirst(name.count + 1)))
    }
}
