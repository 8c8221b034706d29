package import Foundation

/// Runs a binary built next to the test bundle (or tool) and collects what it printed.
package struct CLI {
    package struct Result {
        package let status: Int32
        package let stdout: String
        package let stderr: String

        /// Standard output without the trailing newline.
        package var out: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        /// The `error` object of standard error parsed as a JSON error document, if it is one.
        package var errorDocument: [String: Any]? {
            guard let data = stderr.data(using: .utf8),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { return nil }
            return object["error"] as? [String: Any]
        }
        /// The code of ``errorDocument``.
        package var errorCode: String? { errorDocument?["code"] as? String }
        /// Standard output parsed as JSON.
        package var json: Any? { stdout.data(using: .utf8).flatMap { try? JSONSerialization.jsonObject(with: $0) } }
    }

    /// The directory holding the built products (the test bundle's own directory).
    package static let productsDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()

    package static func path(of product: String) -> String { productsDirectory + "/" + product }

    /// Runs `product` with `arguments` and waits for it.
    package static func run(
        _ arguments: [String], product: String = "ioasid", environment: [String: String] = [:], input: String? = nil
    ) throws -> Result {
        let process = try start(product, arguments, environment: environment, input: input)
        let out = process.out.fileHandleForReading.readDataToEndOfFile()
        let err = process.err.fileHandleForReading.readDataToEndOfFile()
        process.process.waitUntilExit()
        return Result(
            status: process.process.terminationStatus,
            stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self)
        )
    }

    package struct Running {
        package let process: Process
        package let out: Pipe
        package let err: Pipe
    }

    /// Starts `product` without waiting for it.
    ///
    /// - Parameter input: written to the process's standard input (then closed); `nil`: `/dev/null`.
    package static func start(_ product: String, _ arguments: [String], environment: [String: String] = [:], input: String? = nil) throws -> Running {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: product.hasPrefix("/") ? product : path(of: product))
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        // The tests name their store and run the tool in-process unless they say otherwise.
        env.removeValue(forKey: "IOASID_STORE")
        env.removeValue(forKey: "IOASID_SOCKET")
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let stdin = input.map { _ in Pipe() }
        process.standardInput = stdin ?? FileHandle.nullDevice
        try process.run()
        if let stdin, let input {
            // A child that exits before reading all its input (refusing it) must fail the
            // write, not kill the test process with SIGPIPE.
            ignoreBrokenPipes
            let writer = stdin.fileHandleForWriting
            let bytes = Data(input.utf8)
            Thread.detachNewThread {
                try? writer.write(contentsOf: bytes)
                try? writer.close()
            }
        }
        return Running(process: process, out: out, err: err)
    }
}

/// Ignores SIGPIPE in this process, once.
private let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
