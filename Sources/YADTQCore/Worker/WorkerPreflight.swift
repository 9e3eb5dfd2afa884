import Foundation

/// What a worker checks before it joins its group, so a wrong setting stops it at once
/// with a clear error instead of failing its tasks.
public enum WorkerPreflight {
    /// Checks that `path` is a folder this process can read, so a worker with a mistyped
    /// `--plugins` refuses to start instead of failing every task as an unknown type.
    /// - Throws: a ``YADTQError`` that names the folder and how to fix the setting.
    public static func checkPluginFolder(_ path: String) throws {
        let remedy = "Pass the folder holding your <type>.lua files with --plugins DIR or YADTQ_PLUGINS=DIR "
            + "(relative paths start at the current directory, \(FileManager.default.currentDirectoryPath))"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw YADTQError(.configuration, "the plugin folder \(path) does not exist", remedy: remedy)
        }
        guard isDirectory.boolValue else {
            throw YADTQError(.configuration, "the plugin folder \(path) is a file, not a folder", remedy: remedy)
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw YADTQError(
                .configuration, "the plugin folder \(path) cannot be read by this user",
                remedy: "Make it readable (chmod a+rx \(path)), or pass another folder with --plugins DIR")
        }
    }
}
