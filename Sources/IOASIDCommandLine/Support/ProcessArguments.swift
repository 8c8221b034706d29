import IOASIDStore

/// A process's own arguments, which must be UTF-8 text.
///
/// `CommandLine.arguments` repairs bytes that are not UTF-8 with U+FFFD, so two
/// different paths or tokens would read as the same text: a store at `p\xFE` would
/// open the one at `p\xFF`. The tools refuse such an argument instead.
package enum ProcessArguments {
    /// An argument that is not UTF-8: its position (1 is the first after the program) and its
    /// text with the bad bytes repaired and control characters escaped, for a message.
    package struct NotUTF8: Error {
        package let position: Int
        package let shown: String
        /// `argument N is not UTF-8 text: …`.
        package var message: String { "argument \(position) is not UTF-8 text: \"\(shown)\"" }
    }

    /// The arguments after the program name, or the first one that is not UTF-8.
    package static func decoded(
        _ argc: Int32 = CommandLine.argc,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = CommandLine.unsafeArgv
    ) -> Result<[String], NotUTF8> {
        var arguments: [String] = []
        for position in 1..<max(1, Int(argc)) {
            guard let raw = argv[position] else { break }
            guard let argument = String(validatingCString: raw) else {
                // `String(cString:)` repairs what is not UTF-8: shown, not used.
                return .failure(NotUTF8(position: position, shown: Names.escaped(String(cString: raw))))
            }
            arguments.append(argument)
        }
        return .success(arguments)
    }
}
