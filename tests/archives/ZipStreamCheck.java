// Reads a ZIP from standard input with java.util.zip.ZipInputStream (a streaming reader: no
// central directory) and prints "name<TAB>size<TAB>digest" per entry: SHA-256, or CRC-32 with
// the argument "crc32" (for multi-GiB entries). Any error exits non-zero.
import java.io.BufferedInputStream;
import java.io.InputStream;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

public class ZipStreamCheck {
  public static void main(String[] args) throws Exception {
    InputStream in = new BufferedInputStream(System.in, 1 << 20);
    byte[] buffer = new byte[1 << 20];
    boolean crcOnly = args.length > 0 && args[0].equals("crc32");
    try (ZipInputStream zip = new ZipInputStream(in, java.nio.charset.StandardCharsets.UTF_8)) {
      ZipEntry entry;
      while ((entry = zip.getNextEntry()) != null) {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        CRC32 crc = new CRC32();
        long size = 0;
        for (int n; (n = zip.read(buffer)) > 0; ) {
          if (crcOnly) {
            crc.update(buffer, 0, n);
          } else {
            sha.update(buffer, 0, n);
          }
          size += n;
        }
        String digest = crcOnly ? String.format("%08x", crc.getValue())
                                : HexFormat.of().formatHex(sha.digest());
        System.out.println(entry.getName() + "\t" + size + "\t" + digest);
      }
    }
  }
}
