package lakehouse.localfs;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsAction;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system, but without a process per call. Without Hadoop's native library, the stock class runs
 * `chmod` for every permission it sets (each file a Delta commit, checksum or Parquet writer creates) and `readlink`
 * for every link status FileContext asks for (each Delta commit's rename): about 13 ms each, hundreds per run.
 * Here the JVM does both through java.nio; anything it cannot say the same way goes to the stock code.
 */
public class NoForkRawLocalFileSystem extends RawLocalFileSystem {

  @Override
  public void setPermission(Path p, FsPermission permission) throws IOException {
    if (permission.getStickyBit()) {
      super.setPermission(p, permission);
      return;
    }
    java.nio.file.Path file = pathToFile(p).toPath();
    try {
      Files.setPosixFilePermissions(file, posix(permission));
    } catch (NoSuchFileException e) {
      throw new FileNotFoundException("File " + p + " does not exist");
    } catch (UnsupportedOperationException e) {
      super.setPermission(p, permission);  // not a POSIX file system
    }
  }

  @Override
  public FileStatus getFileLinkStatus(Path p) throws IOException {
    // A link is read by the stock code; for anything else the link status is the file's status.
    if (Files.isSymbolicLink(pathToFile(p).toPath())) {
      return super.getFileLinkStatus(p);
    }
    return getFileStatus(p);
  }

  // From the actions, not permission.toString(): a file's create passes FsCreateModes, whose string is
  // "{ masked: rw-r--r--, unmasked: rw-rw-rw- }", while its actions are the masked mode.
  static Set<PosixFilePermission> posix(FsPermission permission) {
    Set<PosixFilePermission> set = EnumSet.noneOf(PosixFilePermission.class);
    add(set, permission.getUserAction(), PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_EXECUTE);
    add(set, permission.getGroupAction(), PosixFilePermission.GROUP_READ, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_EXECUTE);
    add(set, permission.getOtherAction(), PosixFilePermission.OTHERS_READ, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_EXECUTE);
    return set;
  }

  private static void add(Set<PosixFilePermission> set, FsAction action, PosixFilePermission read,
                          PosixFilePermission write, PosixFilePermission execute) {
    if (action.implies(FsAction.READ)) set.add(read);
    if (action.implies(FsAction.WRITE)) set.add(write);
    if (action.implies(FsAction.EXECUTE)) set.add(execute);
  }
}
