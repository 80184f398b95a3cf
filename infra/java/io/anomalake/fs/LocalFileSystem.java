package io.anomalake.fs;

/**
 * The {@code file:} scheme of Hadoop's {@code FileSystem} API ({@code fs.file.impl}): Hadoop's
 * checksummed local file system over {@link RawLocalFileSystem}.
 */
public class LocalFileSystem extends org.apache.hadoop.fs.LocalFileSystem {
  public LocalFileSystem() {
    super(new RawLocalFileSystem());
  }
}
