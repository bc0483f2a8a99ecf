/**
 * The yardstick of merge and restore benches: the original blockdiff_merge's loop, as plain as it was (read
 * a record, seek, write it), as a Perl program for `perl -e` or a file.
 */
export const REFERENCE_MERGE = String.raw`
use strict; use warnings;
my $file = shift; my $fh;
open($fh, "+<", $file) or open($fh, "+>", $file) or die "$file: $!\n";
binmode STDIN; binmode $fh;
read(STDIN, my $head, 4) == 4 or die "no header\n";
my $bs = unpack("V", $head);
while (read(STDIN, $head, 8) == 8) {
  my ($lo, $hi) = unpack("VV", $head);
  read(STDIN, my $block, $bs) or die "truncated\n";
  seek($fh, $hi * 4294967296 + $lo, 0) or die "seek: $!\n";
  print $fh $block or die "write: $!\n";
}
close($fh) or die "close: $!\n";
`;
