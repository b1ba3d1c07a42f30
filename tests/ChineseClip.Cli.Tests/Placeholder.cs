namespace ChineseClip.Cli.Tests;
