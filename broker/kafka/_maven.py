"""Fetch Apache Kafka's official jars from Maven Central, once, into a cache.

We never vendor Kafka: a tiny POM names `org.apache.kafka:kafka_2.13` (and a
log4j binding so the broker's own logs reach a file) and Maven resolves the
runtime classpath into `<cache>/kafka/<version>/lib`. A marker file records a
complete fetch; a lock file keeps concurrent fetches (parallel tests) apart.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from broker.errors import KafkaRuntimeError

LOG4J_VERSION = "2.24.3"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>eu.jcu</groupId>
  <artifactId>jcu-kafka-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def kafka_classpath(cache_dir: Path, version: str) -> Path:
    """Return the directory holding Kafka's runtime jars, fetching them first if needed."""
    home = cache_dir / version
    lib = home / "lib"
    marker = home / ".complete"
    if marker.exists():
        return lib
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaRuntimeError(
                "Maven ('mvn') is not on PATH: install Maven (apt-get install maven) so jcu can "
                "fetch Apache Kafka from Maven Central, or set KAFKA_BOOTSTRAP to a running broker"
            )
        (home / "pom.xml").write_text(_POM.format(version=version, log4j=LOG4J_VERSION))
        if lib.exists():
            shutil.rmtree(lib)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(home / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
            "-DincludeScope=runtime",
        ]
        # an argv list, no shell: Maven with our coordinates and directory
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if proc.returncode != 0 or not any(lib.glob("kafka_2.13-*.jar")):
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise KafkaRuntimeError(
                f"fetching Kafka {version} with Maven failed (exit {proc.returncode}): "
                f"{' '.join(cmd)}\n{tail}"
            )
        marker.write_text(version + "\n")
    return lib
