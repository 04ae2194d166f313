package sparkify.lakehouse;

import java.util.Collection;
import java.util.Map;
import java.util.concurrent.Future;

import org.apache.hadoop.hive.conf.HiveConf;
import org.apache.hive.service.Service;
import org.apache.hive.service.cli.HiveSQLException;
import org.apache.hive.service.cli.SessionHandle;
import org.apache.hive.service.cli.operation.OperationManager;
import org.apache.hive.service.cli.session.HiveSession;
import org.apache.hive.service.cli.session.SessionManager;
import org.apache.hive.service.rpc.thrift.TProtocolVersion;
import org.apache.hive.service.server.HiveServer2;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Spark's session manager with the settings guard in front: a session whose client sends a setting that
 * {@link SettingsPolicy} refuses does not open, and the client is told which key and what a session may set.
 * The check runs before Hive's session applies anything it was sent (Hive sets Java system properties for
 * {@code set:system:} keys, and Spark copies the rest into the Spark session, before any later check could).
 *
 * <p>It wraps the session manager Spark made (whose own set-up finds its fields by reflection on its exact
 * class, so it cannot be subclassed) and hands every call on to it.
 */
public final class GuardedSessionManager extends SessionManager {

  private static final Logger LOG = LoggerFactory.getLogger(GuardedSessionManager.class);

  private final SessionManager spark;

  GuardedSessionManager(HiveServer2 server, SessionManager spark) {
    super(server);
    this.spark = spark;
  }

  @Override
  public SessionHandle openSession(TProtocolVersion protocol, String username, String password, String ipAddress,
      Map<String, String> sessionConf) throws HiveSQLException {
    return openSession(protocol, username, password, ipAddress, sessionConf, false, null);
  }

  @Override
  public SessionHandle openSession(TProtocolVersion protocol, String username, String password, String ipAddress,
      Map<String, String> sessionConf, boolean withImpersonation, String delegationToken) throws HiveSQLException {
    String refusal = SettingsPolicy.refusalAtOpen(sessionConf);
    if (refusal != null) {
      LOG.warn("session of user '{}' from {} refused: {}", username, ipAddress, refusal);
      throw new HiveSQLException(refusal);
    }
    return spark.openSession(protocol, username, password, ipAddress, sessionConf, withImpersonation, delegationToken);
  }

  @Override
  public void closeSession(SessionHandle handle) throws HiveSQLException {
    spark.closeSession(handle);
  }

  @Override
  public HiveSession getSession(SessionHandle handle) throws HiveSQLException {
    return spark.getSession(handle);
  }

  @Override
  public OperationManager getOperationManager() {
    return spark.getOperationManager();
  }

  @Override
  public Future<?> submitBackgroundOperation(Runnable task) {
    return spark.submitBackgroundOperation(task);
  }

  @Override
  public int getOpenSessionCount() {
    return spark.getOpenSessionCount();
  }

  /** Spark's manager was initialised by the CLI service already. */
  @Override
  public synchronized void init(HiveConf hiveConf) {
  }

  @Override
  public synchronized void start() {
    spark.start();
  }

  @Override
  public synchronized void stop() {
    spark.stop();
  }

  @Override
  public synchronized Service.STATE getServiceState() {
    return spark.getServiceState();
  }

  @Override
  public synchronized HiveConf getHiveConf() {
    return spark.getHiveConf();
  }

  @Override
  public Collection<Service> getServices() {
    return spark.getServices();
  }

  @Override
  public long getStartTime() {
    return spark.getStartTime();
  }
}
