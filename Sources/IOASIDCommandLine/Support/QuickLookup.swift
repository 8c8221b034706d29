import ArgumentParser

/// `find-set ID` and `find ID [--set SID]` — the lookups a script runs once per
/// ID — in their plainest forms, run without argument-parser.
///
/// Argument-parser's first parse in a process costs about 1.7 ms of CPU of a 7 ms
/// `ioasid find-set` (measured with `perf stat` and `perf record`: it builds the
/// root's and the command's arguments by reflection, instantiating their generic
/// types, and parses the arguments twice more, against two other commands, to
/// look for `--generate-completion-script`). These forms are recognised only when
/// every argument is one that argument-parser reads the same way:
///
/// - `--store DIR` or `--store=DIR` once, `DIR` not empty and not starting with
///   `-`, and `--json` once, before or after the command name;
/// - after the command name, in any order: the ID as 1 to 10 ASCII digits that
///   fit 32 bits, and for `find`, `--set SID` or `--set=SID` once, `SID` the same.
///
/// Anything else — help, `--verbose`, `--guest`, `--`, a repeated or unknown
/// option, a value argument-parser would refuse or read otherwise — goes to
/// argument-parser as before. The lookup itself, the store path and the output
/// are the commands' own (``IOASIDCommand/FindSet/show(_:_:)``,
/// ``IOASIDCommand/Find/show(_:in:_:_:)``, ``Invocation``).
package struct QuickLookup {
    /// A lookup and its arguments.
    package enum Lookup: Equatable {
        case findSet(UInt32)
        case find(UInt32, set: UInt32?)
    }

    /// The lookup asked for.
    package let lookup: Lookup
    /// `--store` and `--json` (never `--verbose`).
    let invocation: Invocation

    /// `--store`, if given.
    package var store: String? { invocation.store }
    /// Whether `--json` was given.
    package var json: Bool { invocation.json }

    /// The lookup `arguments` (without the program name) ask for, or `nil` when
    /// they are not in one of the plain forms.
    package init?(_ arguments: [String]) {
        var command: String?
        var store: String?
        var json = false
        var id: UInt32?
        var set: UInt32?
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--json" {
                guard !json else { return nil }
                json = true
            } else if case let match = ArgumentScan.option("--store", in: arguments, at: &index), match != .other {
                guard store == nil, case .value(let value) = match, !value.isEmpty, !value.hasPrefix("-") else { return nil }
                store = value
            } else if command == nil {
                guard argument == "find-set" || argument == "find" else { return nil }
                command = argument
            } else if command == "find", case let match = ArgumentScan.option("--set", in: arguments, at: &index), match != .other {
                guard set == nil, case .value(let value) = match, let number = Self.number(value) else { return nil }
                set = number
            } else {
                guard id == nil, let number = Self.number(argument) else { return nil }
                id = number
            }
            index += 1
        }
        guard let command, let id else { return nil }
        lookup = command == "find-set" ? .findSet(id) : .find(id, set: set)
        invocation = Invocation(store: store, json: json, verbose: false)
    }

    /// Runs the lookup as the command would; store errors are reported and thrown
    /// as their exit code (``Output/run(json:_:)``).
    func run() throws {
        try Output.run(json: invocation.json) {
            switch lookup {
            case .findSet(let id):
                try IOASIDCommand.FindSet.show(id, invocation)
            case .find(let id, let set):
                try IOASIDCommand.Find.show(id, in: set, try invocation.openStoreForReading(), invocation)
            }
        }
    }

    /// A number written as 1 to 10 ASCII digits that fits 32 bits; `nil` for
    /// anything else (a sign, a space, other digits), which argument-parser judges.
    private static func number(_ text: String) -> UInt32? {
        let utf8 = text.utf8
        guard (1...10).contains(utf8.count), utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return UInt32(text)
    }
}

extension QuickLookup {
    /// How argument-parser reads `arguments` differently from the quick lookup
    /// they form, or `nil` when they form none or it reads them the same way: the
    /// same command, ID and set, the same `--store` and `--json`, and nothing else
    /// set. The fuzzers check every argument vector with it.
    package static func disagreement(_ arguments: [String]) -> String? {
        guard let quick = QuickLookup(arguments) else { return nil }
        let command: any ParsableCommand
        do {
            command = try IOASIDCommand.parseAsRoot(arguments)
        } catch {
            return "argument-parser refuses it (\(IOASIDCommand.message(for: error)))"
        }
        let global: GlobalOptions
        switch (quick.lookup, command) {
        case (.findSet(let id), let parsed as IOASIDCommand.FindSet):
            guard parsed.id == id else { return "argument-parser reads ID \(parsed.id), the quick lookup \(id)" }
            global = parsed.global
        case (.find(let id, let set), let parsed as IOASIDCommand.Find):
            guard parsed.id == id, parsed.set == set, parsed.guest == nil else {
                return "argument-parser reads ID \(String(describing: parsed.id)), set \(String(describing: parsed.set)), "
                    + "guest \(String(describing: parsed.guest)); the quick lookup ID \(id), set \(String(describing: set))"
            }
            global = parsed.global
        default:
            return "argument-parser reads it as \(type(of: command)), the quick lookup as \(quick.lookup)"
        }
        guard global.store == quick.store, global.json == quick.json, !global.verbose, global.socket == nil else {
            return "argument-parser reads --store \(String(describing: global.store)), --json \(global.json), "
                + "--verbose \(global.verbose), --socket \(String(describing: global.socket)); "
                + "the quick lookup --store \(String(describing: quick.store)), --json \(quick.json)"
        }
        return nil
    }
}
