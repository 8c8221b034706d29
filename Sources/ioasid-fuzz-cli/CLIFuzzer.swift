// ioasid-fuzz-cli: a libFuzzer target for the ioasid command's argument handling.
//
// An input is an argument vector: tokens separated by NUL or newline bytes (one
// trailing separator is ignored; invalid UTF-8 is decoded with replacement
// characters, as the real command line is). When the first token is a number of
// at most three digits, it is replaced by the real command path with that index
// (modulo the number of paths: `set create`, `events tail`, …), so the fuzzer reaches
// every subcommand easily. The vector is parsed with `IOASIDCommand.parseAsRoot`;
// nothing is run and no store is opened. Every outcome must be a parse, or a
// thrown error that `IOASIDCommand.exitCode(for:)` maps to 0 (help, version) or
// 64 (usage error); for one input in eight the full message (usage and help) is
// rendered too and must not be empty for a usage error. A vector that forms a quick
// lookup (`find-set ID`, `find ID --set SID` run without argument-parser) must be
// parsed by argument-parser as the same lookup (`QuickLookup.disagreement`).
// Anything else aborts.
//
// Built by Tools/fuzz with `-DLIBFUZZER --sanitize=fuzzer --sanitize=address`, the
// binary is a libFuzzer fuzzer. Built plainly, it replays inputs instead:
//   ioasid-fuzz-cli FILE|DIR...       parses each input and prints its outcome
//   ioasid-fuzz-cli --paths           lists the command paths the first token picks from

import ArgumentParser
import Foundation
import IOASIDCommandLine

/// libFuzzer's entry point: parses one argument vector; aborts on an outcome other
/// than a parse, help or version, or a usage error.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = check(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// Every command path of the real command, root first (`[]`, `["init"]`, `["set"]`, `["set", "create"]`, …).
let commandPaths: [[String]] = {
    var paths: [[String]] = []
    func walk(_ command: any ParsableCommand.Type, _ path: [String]) {
        paths.append(path)
        for sub in command.configuration.subcommands {
            guard let name = sub.configuration.commandName else { continue }
            walk(sub, path + [name])
        }
    }
    walk(IOASIDCommand.self, [])
    return paths
}()

/// The argument vector an input stands for.
func arguments(_ input: [UInt8]) -> [String] {
    var bytes = input[...]
    if let last = bytes.last, last == 0 || last == 0x0a { bytes = bytes.dropLast() }
    if bytes.isEmpty { return [] }
    var tokens = bytes.split(omittingEmptySubsequences: false, whereSeparator: { $0 == 0 || $0 == 0x0a })
        .map { String(decoding: $0, as: UTF8.self) }
    if let first = tokens.first, (1...3).contains(first.utf8.count), first.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
        let index = Int(first)
    {
        tokens = commandPaths[index % commandPaths.count] + tokens.dropFirst()
    }
    return tokens
}

/// Reports a broken rule and aborts, so that libFuzzer saves the input.
func fail(_ message: String) -> Never {
    try? FileHandle.standardError.write(contentsOf: Data("ioasid-fuzz-cli: RULE BROKEN: \(message)\n".utf8))
    abort()
}

/// Parses one input; returns its outcome (`parsed`, `exit 0`, `exit 64`).
func check(_ input: [UInt8]) -> String {
    let argv = arguments(input)
    if let disagreement = QuickLookup.disagreement(argv) { fail("\(argv) is a quick lookup, but \(disagreement)") }
    do {
        let command = try IOASIDCommand.parseAsRoot(argv)
        _ = String(describing: type(of: command))
        return "parsed \(type(of: command))"
    } catch {
        let code = IOASIDCommand.exitCode(for: error).rawValue
        guard code == 0 || code == 64 else { fail("\(argv) exits \(code): \(IOASIDCommand.message(for: error))") }
        // Rendering the message (usage and help text) costs as much as the parse:
        // done for one input in eight, chosen by content.
        if input.reduce(UInt8(0), &+) % 8 == 0, code == 64, IOASIDCommand.fullMessage(for: error).isEmpty {
            fail("\(argv) is a usage error with no message")
        }
        return "exit \(code)"
    }
}

#if !LIBFUZZER
/// Without libFuzzer: replays inputs, printing each one's outcome.
@main
enum Replay {
    static func main() throws {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments == ["--paths"] {
            for (index, path) in commandPaths.enumerated() { print(index, path.joined(separator: " ")) }
            return
        }
        guard !arguments.isEmpty, !arguments.contains(where: { $0.hasPrefix("-") }) else {
            try? FileHandle.standardError.write(contentsOf: Data("usage: ioasid-fuzz-cli FILE|DIR... | --paths\n".utf8))
            exit(64)
        }
        var count = 0
        while let path = arguments.popLast() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                try? FileHandle.standardError.write(contentsOf: Data("ioasid-fuzz-cli: no such file \(path)\n".utf8))
                exit(66)
            }
            if isDirectory.boolValue {
                arguments += try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 }
                continue
            }
            let input = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            print("\(path): \(check(input))")
            count += 1
        }
        print("ioasid-fuzz-cli: \(count) inputs replayed, no rule broken")
    }
}
#endif
