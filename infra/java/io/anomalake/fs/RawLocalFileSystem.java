package io.anomalake.fs;

import java.io.IOException;
import java.nio.file.Files;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's raw local file system, setting permissions and reading link status through
 * {@code java.nio} instead of a forked {@code chmod} or {@code readlink}.
 *
 * <p>Without Hadoop's native library (pyspark ships none), {@link
 * org.apache.hadoop.fs.RawLocalFileSystem} starts a process to set the permissions of every file
 * it creates and to check the source and target of every {@code FileContext} rename for a
 * symbolic link. A micro-batch of a streaming query creates and renames dozens of files (Parquet
 * parts, Delta log entries and checksums, offset and commit logs, state-store deltas); on a
 * two-core machine the forks took 11 of 60 stack samples of the stream's thread, and removing
 * them cut the median micro-batch by a quarter (docs/benchmarks.md). Everything else is
 * Hadoop's own code.
 */
public class RawLocalFileSystem extends org.apache.hadoop.fs.RawLocalFileSystem {
  /** The set-user-ID and set-group-ID bits, which Hadoop permissions do not carry. */
  private static final int SETID_BITS = 06000;

  /**
   * {@code chmod} through {@code java.nio}'s {@code unix:mode} attribute, as Hadoop's forked
   * {@code chmod 0NNN} does: all of Hadoop's bits (sticky included), and a directory keeps its
   * set-ID bits. Where that attribute is missing, Hadoop's own way.
   */
  @Override
  public void setPermission(Path p, FsPermission permission) throws IOException {
    java.nio.file.Path path = pathToFile(p).toPath();
    try {
      int mode = permission.toShort() & 01777;
      if (Files.isDirectory(path)) {
        mode |= (Integer) Files.getAttribute(path, "unix:mode") & SETID_BITS;
      }
      Files.setAttribute(path, "unix:mode", mode);
    } catch (UnsupportedOperationException | IllegalArgumentException notUnix) {
      super.setPermission(p, permission);
    }
  }

  /** A symbolic link is left to Hadoop; anything else has the status of the file itself. */
  @Override
  public FileStatus getFileLinkStatus(Path f) throws IOException {
    if (Files.isSymbolicLink(pathToFile(f).toPath())) {
      return super.getFileLinkStatus(f);
    }
    return getFileStatus(f);
  }
}
