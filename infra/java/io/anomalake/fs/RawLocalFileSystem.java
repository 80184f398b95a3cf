package io.anomalake.fs;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's raw local file system, setting permissions and reading link status through
 * {@code java.nio} instead of a forked {@code chmod} or {@code readlink}.
 *
 * <p>Without Hadoop's native library (pyspark ships none), {@link
 * org.apache.hadoop.fs.RawLocalFileSystem} starts a process to set the permissions of every file
 * it creates and to check every rename's source and target for a symbolic link. A micro-batch
 * of a streaming query creates and renames dozens of files (Parquet parts, Delta log entries and
 * checksums, offset and commit logs, state-store deltas), so the forks cost it a quarter of its
 * time on a two-core machine. Everything else is Hadoop's own code.
 */
public class RawLocalFileSystem extends org.apache.hadoop.fs.RawLocalFileSystem {
  /** The permission bits, lowest first, as {@code java.nio} names them. */
  private static final PosixFilePermission[] BITS = {
    PosixFilePermission.OTHERS_EXECUTE,
    PosixFilePermission.OTHERS_WRITE,
    PosixFilePermission.OTHERS_READ,
    PosixFilePermission.GROUP_EXECUTE,
    PosixFilePermission.GROUP_WRITE,
    PosixFilePermission.GROUP_READ,
    PosixFilePermission.OWNER_EXECUTE,
    PosixFilePermission.OWNER_WRITE,
    PosixFilePermission.OWNER_READ,
  };

  /** The read/write/execute bits of {@code permission} (a sticky bit has no NIO name). */
  static Set<PosixFilePermission> posixPermissions(FsPermission permission) {
    short mode = permission.toShort();
    Set<PosixFilePermission> set = EnumSet.noneOf(PosixFilePermission.class);
    for (int i = 0; i < BITS.length; i++) {
      if ((mode & (1 << i)) != 0) {
        set.add(BITS[i]);
      }
    }
    return set;
  }

  @Override
  public void setPermission(Path p, FsPermission permission) throws IOException {
    Files.setPosixFilePermissions(pathToFile(p).toPath(), posixPermissions(permission));
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
