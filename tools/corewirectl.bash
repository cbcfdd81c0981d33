# bash completion for corewirectl (installed to share/bash-completion/completions/).
_corewirectl() {
  local cur prev words cword
  _init_completion || return
  local cmds="run status stats top services config log-level service drain shutdown reload rtp cluster"
  local globals="-c --config --run-dir --socket --stats --json --help --version"
  case $prev in
    -c | --config) _filedir toml; return ;;
    --run-dir) _filedir -d; return ;;
    --socket | --stats | --corewire) _filedir; return ;;
    log-level) COMPREPLY=($(compgen -W "trace debug info warn error critical off" -- "$cur")); return ;;
    service) COMPREPLY=($(compgen -W "enable disable" -- "$cur")); return ;;
    config) COMPREPLY=($(compgen -W "show" -- "$cur")); return ;;
    rtp) COMPREPLY=($(compgen -W "open close list" -- "$cur")); return ;;
    cluster) COMPREPLY=($(compgen -W "init-ca issue-cert" -- "$cur")); return ;;
    --ca | --out) _filedir -d; return ;;
  esac
  local i sub=
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      -c | --config | --run-dir | --socket | --stats) ((i++)) ;;
      -*) ;;
      *) sub=${words[i]}; break ;;
    esac
  done
  case $sub in
    "") COMPREPLY=($(compgen -W "$cmds $globals" -- "$cur")) ;;
    run) COMPREPLY=($(compgen -W "--corewire --admin-port --backoff-ms --backoff-max-ms $globals" -- "$cur")) ;;
    stats) COMPREPLY=($(compgen -W "reset -w --watch -i --interval-ms -n --count $globals" -- "$cur")) ;;
    top) COMPREPLY=($(compgen -W "-i --interval-ms -n --count $globals" -- "$cur")) ;;
    rtp) COMPREPLY=($(compgen -W "--pt --ssrc --peer-ssrc --table $globals" -- "$cur")) ;;
    cluster) COMPREPLY=($(compgen -W "--name --ca --out $globals" -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
  esac
}
complete -F _corewirectl corewirectl
