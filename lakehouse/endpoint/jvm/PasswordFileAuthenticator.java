package sparkify.lakehouse;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.List;

import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.security.sasl.AuthenticationException;

import org.apache.hive.service.auth.PasswdAuthenticationProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * HiveServer2 CUSTOM sign-in against a password file written by `lakehouse thrift add-user`.
 *
 * <p>One user a line: {@code name:pbkdf2-sha256:ITERATIONS:SALT_BASE64:HASH_BASE64}; lines starting
 * with '#' and blank lines are ignored. The file named by the system property
 * {@code lakehouse.thrift.password_file} is read on every sign-in, so users added or removed while the
 * server runs take effect at once. The client only learns that sign-in failed; the reason goes to the log.
 */
public final class PasswordFileAuthenticator implements PasswdAuthenticationProvider {

  public static final String FILE_PROPERTY = "lakehouse.thrift.password_file";
  private static final String SCHEME = "pbkdf2-sha256";
  private static final Logger LOG = LoggerFactory.getLogger(PasswordFileAuthenticator.class);

  @Override
  public void Authenticate(String user, String password) throws AuthenticationException {
    String reason = check(user, password);
    if (reason != null) {
      LOG.warn("sign-in refused for user '{}': {}", user, reason);
      throw new AuthenticationException("sign-in refused for user '" + user + "'");
    }
  }

  /** Null when `password` is right for `user`, else why not. */
  static String check(String user, String password) {
    String file = System.getProperty(FILE_PROPERTY);
    if (file == null || file.isEmpty()) {
      return "no password file configured (" + FILE_PROPERTY + ")";
    }
    if (user == null || user.isEmpty() || password == null || password.isEmpty()) {
      return "empty user name or password";
    }
    List<String> lines;
    try {
      lines = Files.readAllLines(Paths.get(file), StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "cannot read the password file " + file + ": " + e;
    }
    for (String line : lines) {
      String trimmed = line.trim();
      if (trimmed.isEmpty() || trimmed.startsWith("#")) {
        continue;
      }
      String[] parts = trimmed.split(":");
      if (parts.length != 5 || !parts[0].equals(user)) {
        continue;
      }
      if (!SCHEME.equals(parts[1])) {
        return "unsupported hash scheme '" + parts[1] + "' in " + file;
      }
      try {
        int iterations = Integer.parseInt(parts[2]);
        byte[] salt = Base64.getDecoder().decode(parts[3]);
        byte[] expected = Base64.getDecoder().decode(parts[4]);
        byte[] actual = pbkdf2(password, salt, iterations, expected.length);
        return MessageDigest.isEqual(expected, actual) ? null : "wrong password";
      } catch (IllegalArgumentException | GeneralSecurityException e) {
        return "malformed entry in " + file + ": " + e.getMessage();
      }
    }
    return "unknown user";
  }

  /** PBKDF2-HMAC-SHA256 of the UTF-8 password, as Python's hashlib.pbkdf2_hmac("sha256", ...). */
  static byte[] pbkdf2(String password, byte[] salt, int iterations, int length) throws GeneralSecurityException {
    PBEKeySpec spec = new PBEKeySpec(password.toCharArray(), salt, iterations, length * 8);
    try {
      return SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
    } finally {
      spec.clearPassword();
    }
  }

  /** `java sparkify.lakehouse.PasswordFileAuthenticator FILE USER PASSWORD [USER PASSWORD ...]`: one line per
   * pair, "ok" or why the sign-in would be refused; exit 0 when all pass. */
  public static void main(String[] args) {
    System.setProperty(FILE_PROPERTY, args[0]);
    boolean all = true;
    for (int i = 1; i + 1 < args.length; i += 2) {
      String reason = check(args[i], args[i + 1]);
      System.out.println(reason == null ? "ok" : reason);
      all &= reason == null;
    }
    System.exit(all ? 0 : 1);
  }
}
