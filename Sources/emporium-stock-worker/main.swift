import Workers

// Thin entry point; the worker lives in the Workers library.
await WorkerMain.run(role: .stock)
