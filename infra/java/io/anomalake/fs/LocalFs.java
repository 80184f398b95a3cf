package io.anomalake.fs;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.ChecksumFs;
import org.apache.hadoop.fs.DelegateToFileSystem;
import org.apache.hadoop.fs.FsConstants;
import org.apache.hadoop.fs.FsServerDefaults;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.local.LocalConfigKeys;

/**
 * The {@code file:} scheme of Hadoop's {@code FileContext} API ({@code
 * fs.AbstractFileSystem.file.impl}), which Spark's checkpoint files and Delta's log use: Hadoop's
 * {@code LocalFs} (checksums over a raw local file system) with {@link RawLocalFileSystem} as the
 * raw one. (Spark's {@code AbstractFileContextBasedCheckpointFileManager.isLocal} recognises
 * only Hadoop's own classes; nothing in Spark 4.2 calls it.)
 */
public class LocalFs extends ChecksumFs {
  /** Like Hadoop's {@code LocalFs}, for any {@code file:} URI: the local file system's own. */
  public LocalFs(URI uri, Configuration conf) throws IOException, URISyntaxException {
    super(new Raw(conf));
  }

  /** Hadoop's {@code RawLocalFs}, whose constructor names its file system class. */
  static final class Raw extends DelegateToFileSystem {
    Raw(Configuration conf) throws IOException, URISyntaxException {
      super(FsConstants.LOCAL_FS_URI, new RawLocalFileSystem(), conf, "file", false);
    }

    @Override
    public int getUriDefaultPort() {
      return -1; // no default port
    }

    @Override
    public FsServerDefaults getServerDefaults(Path f) throws IOException {
      return LocalConfigKeys.getServerDefaults();
    }

    @Override
    @Deprecated
    public FsServerDefaults getServerDefaults() throws IOException {
      return LocalConfigKeys.getServerDefaults();
    }

    @Override
    public boolean isValidName(String src) {
      return true; // any path is valid on a local file system
    }
  }
}
